import ArgumentParser
import Foundation
import ShortcutDetect

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `-` for standard input or output wherever a command takes a `.npy` path.
enum StandardStreams {
    /// The name a path argument gives standard input or output.
    static let dash = "-"

    /// Reads the tensor in the `.npy` file at `path`, or on standard input when `path` is `-`.
    static func readNPY(_ path: String, flag: String) throws -> Tensor {
        guard path == dash else { return try Tensor(npyAt: URL(fileURLWithPath: path)) }
        return try Tensor(npyData: readInput(for: flag), path: "standard input (\(flag) -)")
    }

    /// Writes `tensor` as a `.npy` file at `path`, or to standard output when `path` is `-`.
    static func writeNPY(_ tensor: Tensor, to path: String) throws {
        guard path == dash else { return try tensor.writeNPY(to: URL(fileURLWithPath: path)) }
        try write(tensor.npyData())
    }

    /// All of standard input, counted against the memory budget as it grows.
    static func readInput(for flag: String) throws -> Data {
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if count == 0 { return data }
            if count < 0 {
                if errno == EINTR { continue }
                throw FileError(path: "standard input", reason: String(cString: strerror(errno)))
            }
            try MemoryBudget.check(data.count + count, for: "\(flag) - (standard input)")
            data.append(contentsOf: chunk[0..<count])
        }
    }

    /// Writes all of `data` to standard output.
    static func write(_ data: Data) throws {
        fflush(nil)  // what print() buffered goes first
        try data.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            var offset = 0
            while offset < bytes.count {
                let count = systemWrite(STDOUT_FILENO, base + offset, bytes.count - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw FileError(path: "standard output", reason: String(cString: strerror(errno)))
                }
                offset += count
            }
        }
    }

    /// Checks that at most one argument reads standard input and at most one writes standard output,
    /// and that neither stream is a terminal: a `.npy` is not typed in, nor shown. Paths are `(flag, path)`.
    static func check(inputs: [(String, String)], outputs: [(String, String)]) throws {
        for (paths, stream, descriptor) in [(inputs, "standard input", STDIN_FILENO), (outputs, "standard output", STDOUT_FILENO)] {
            let dashed = paths.filter { $0.1 == dash }.map(\.0)
            if dashed.count > 1 {
                throw ValidationError("only one of \(dashed.joined(separator: ", ")) may use \(stream)")
            }
            if let flag = dashed.first, flag != "--json", isatty(descriptor) != 0 {
                throw ValidationError("\(flag) - uses \(stream), which is a terminal; \(descriptor == STDIN_FILENO ? "pipe a .npy file into it" : "redirect it to a file or a pipe")")
            }
        }
    }
}

/// The C library's `write`, which the static `write(_:)` above hides.
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }

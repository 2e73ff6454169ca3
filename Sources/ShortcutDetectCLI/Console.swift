import ArgumentParser
import Foundation
import ShortcutDetect

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `--quiet` and `--verbose`, on every command.
struct ConsoleOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print nothing but errors (and the data asked for on standard output: --json, an output named -).")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Also print timings and details on standard error.")
    var verbose = false

    /// Sets ``Console/level``, while validating, so it holds before a command prints anything.
    func validate() throws {
        if quiet && verbose { throw ValidationError("--quiet and --verbose do not go together") }
        Console.level = quiet ? .quiet : verbose ? .verbose : .normal
    }
}

/// `--json`: the command's result as one JSON object on standard output, instead of the text.
struct JSONOption: ParsableArguments {
    @Flag(help: "Print the result as one JSON object on standard output instead of the text.")
    var json = false

    /// Sets ``Console/channel`` while validating, so no text reaches standard output.
    func validate() throws {
        if json { Console.channel = .json }
    }
}

/// Where a command's messages go, so that standard output stays clean when it carries data.
///
/// Results for people (``say(_:)``) go to standard output, or to standard error when standard
/// output carries a `.npy` (an output named `-`), and are dropped when it carries `--json`;
/// remarks (``note(_:)``) and details (``detail(_:)``, with `--verbose`) go to standard error.
/// `--quiet` drops everything but errors and the data itself.
enum Console {
    enum Level: Int { case quiet, normal, verbose }

    /// What standard output carries.
    enum Channel { case text, json, data }

    private static let state = Locked((level: Level.normal, channel: Channel.text))

    static var level: Level {
        get { state.value.level }
        set { state.update { $0.level = newValue } }
    }

    static var channel: Channel {
        get { state.value.channel }
        set { state.update { $0.channel = newValue } }
    }

    static var quiet: Bool { level == .quiet }

    /// A result for people: what was found or written.
    static func say(_ text: String) {
        guard level != .quiet else { return }
        switch channel {
        case .text: print(text)
        case .json: break
        case .data: standardError(text)
        }
    }

    /// A remark on standard error, such as the layer chosen for the user.
    static func note(_ text: String) {
        guard level != .quiet else { return }
        standardError(text)
    }

    /// A detail on standard error, with `--verbose` only.
    static func detail(_ text: @autoclosure () -> String) {
        guard level == .verbose else { return }
        standardError(text())
    }

    /// Runs `body`; with `--verbose`, says how long it took (`what` in 12.3 ms).
    static func timed<R>(_ what: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        guard level == .verbose else { return try body() }
        let start = DispatchTime.now()
        let result = try body()
        detail("\(what()) in \(milliseconds(since: start))")
        return result
    }

    /// The time since `start`, as `12.3 ms` or `4.56 s`.
    static func milliseconds(since start: DispatchTime) -> String {
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
        return ms < 1000 ? String(format: "%.1f ms", ms) : String(format: "%.2f s", ms / 1000)
    }

    /// `value` as pretty JSON with sorted snake_case keys on standard output.
    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try StandardStreams.write(encoder.encode(value) + Data("\n".utf8))
    }

    /// A JSON object built from Foundation values (as `JSONSerialization` reads them) on standard output.
    static func json(object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try StandardStreams.write(data + Data("\n".utf8))
    }

    private static func standardError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// The model at `path`; with `--verbose`, how long reading it took.
func loadModel(_ path: String) throws -> Model {
    try Console.timed("read \(path)") { try Model(contentsOf: URL(fileURLWithPath: path)) }
}

/// A value behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private var stored: Value
    private let lock = NSLock()

    init(_ value: Value) { stored = value }

    var value: Value { lock.withLock { stored } }

    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
}

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

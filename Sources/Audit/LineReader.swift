import Foundation
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a file one line at a time through a fixed buffer, so files of any length stream in
/// constant memory.
final class LineReader {
    let url: URL
    /// The number of the line ``next()`` returned last (from 1).
    private(set) var lineNumber = 0
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    /// The longest line accepted: a file without line breaks must not be read whole.
    private let limit: Int

    init(_ url: URL, limit: Int = 64 << 20) throws {
        self.url = url
        self.limit = limit
        do { fd = try FileIO.openRegular(url.path).fd } catch let error as FileError {
            throw AuditError.invalid("cannot read \(url.path): \(error.reason)")
        }
    }

    deinit { close(fd) }

    /// The next line without its line break (`\n` or `\r\n`), or `nil` at the end of the file.
    func next() throws -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var line = buffer[start..<newline]
                start = newline + 1
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                lineNumber += 1
                return line
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                lineNumber += 1
                return line.last == UInt8(ascii: "\r") ? line.dropLast() : line
            }
            guard buffer.count - start < limit else {
                throw AuditError.invalid("\(url.path) line \(lineNumber + 1) is longer than \(limit >> 20) MB")
            }
            buffer.removeFirst(start)
            start = 0
            let chunk = 1 << 20
            let old = buffer.count
            buffer.append(contentsOf: repeatElement(0, count: chunk))
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + old, chunk) }
            guard count >= 0 else { throw AuditError.invalid("cannot read \(url.path): \(String(cString: strerror(errno)))") }
            buffer.removeLast(chunk - count)
            if count == 0 { atEnd = true }
        }
    }
}

/// Reads a binary file of float32 rows one row at a time.
final class RowReader {
    let url: URL
    let width: Int
    private let fd: Int32

    /// Opens `url`, which must hold exactly `rows` rows of `width` values; `name` labels errors.
    init(_ url: URL, width: Int, rows: Int, name: String) throws {
        self.url = url
        self.width = width
        let size: Int
        do { (fd, size) = try FileIO.openRegular(url.path) } catch let error as FileError {
            throw AuditError.invalid("cannot read \(name): \(error.reason)")
        }
        let bytes = MemoryBudget.product(rows, width, MemoryLayout<Float>.size)
        guard size == bytes else {
            close(fd)
            throw AuditError.invalid(
                "\(name) has \(size) bytes; \(rows) rows of \(width) float32 values need \(bytes.map(String.init) ?? "more than can be addressed")")
        }
    }

    deinit { close(fd) }

    /// The next row.
    func next() throws -> [Float] {
        var row = [Float](repeating: 0, count: width)
        try row.withUnsafeMutableBytes { raw in
            var done = 0
            while done < raw.count {
                let count = read(fd, raw.baseAddress! + done, raw.count - done)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { throw AuditError.invalid("\(url.path) ends early") }
                done += count
            }
        }
        return row
    }
}

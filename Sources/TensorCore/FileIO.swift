import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading and writing the files a user or a model names, with errors in our own words.
///
/// Foundation's readers open before they look: a FIFO or a terminal given as a model or an
/// image makes them block forever, and their errors read "NSCocoaErrorDomain error 256". Here a
/// file is opened without blocking, refused unless it is a regular file, and mapped; every
/// failure is a ``FileError`` that names the file and says what went wrong.
package enum FileIO {
    /// Calls `body` with a descriptor open for reading on the regular file at `path`, and its size.
    package static func withDescriptor<R>(of path: String, _ body: (_ fd: Int32, _ size: Int) throws -> R) throws -> R {
        let (fd, size) = try openRegular(path)
        defer { close(fd) }
        return try body(fd, size)
    }

    /// Opens the regular file at `path` for reading (a file read in pieces, such as a stream of
    /// records); returns the descriptor, which the caller closes, and the file's size.
    package static func openRegular(_ path: String) throws -> (fd: Int32, size: Int) {
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path: path, reason: String(cString: strerror(errno))) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw FileError(path: path, reason: reason)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw FileError(path: path, reason: "it is \(kind(info.st_mode)), not a regular file")
        }
        return (fd, Int(info.st_size))
    }

    /// Calls `body` with the bytes of the regular file at `path`, mapped read-only.
    package static func withContents<R>(of path: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try withDescriptor(of: path) { fd, size in try mapped(fd, size: size, path: path, body) }
    }

    private static func mapped<R>(_ fd: Int32, size: Int, path: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard size > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        // Linux: fault the whole file in with one call instead of a page fault per 4 KB while decoding.
        #if os(Linux)
        let flags = MAP_PRIVATE | MAP_POPULATE
        #else
        let flags = MAP_PRIVATE
        #endif
        guard let mapped = mmap(nil, size, PROT_READ, flags, fd, 0), mapped != MAP_FAILED else {
            throw FileError(path: path, reason: "cannot map it into memory: \(String(cString: strerror(errno)))")
        }
        defer { munmap(mapped, size) }
        return try body(UnsafeRawBufferPointer(start: mapped, count: size))
    }

    /// The bytes of the regular file at `path`, copied into memory (checked against the ``MemoryBudget``).
    package static func data(of path: String) throws -> Data {
        try withContents(of: path) { bytes in
            try MemoryBudget.check(bytes.count, for: "reading \(path)")
            return Data(bytes)
        }
    }

    /// The file at `path` as UTF-8 text.
    package static func text(of path: String) throws -> String {
        let data = try data(of: path)
        guard let text = String(data: data, encoding: .utf8) else { throw FileError(path: path, reason: "it is not UTF-8 text") }
        return text
    }

    /// Writes `data` to `url`, replacing any file there.
    package static func write(_ data: Data, to url: URL) throws {
        do { try data.write(to: url) } catch {
            throw FileError(path: url.path, reason: "cannot write it (\(writeFailure(url)))")
        }
    }

    /// The names in the folder at `url`.
    package static func contentsOfFolder(_ url: URL) throws -> [String] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else {
            throw FileError(path: url.path, reason: "no such folder")
        }
        guard isFolder.boolValue else { throw FileError(path: url.path, reason: "it is a file, not a folder") }
        do { return try FileManager.default.contentsOfDirectory(atPath: url.path) } catch {
            throw FileError(path: url.path, reason: access(url.path, R_OK) != 0 ? "the folder is not readable" : "the folder cannot be listed")
        }
    }

    /// Why writing to `url` fails, in words: Foundation's own error only gives a code.
    private static func writeFailure(_ url: URL) -> String {
        let folder = url.deletingLastPathComponent().path
        var isFolder: ObjCBool = false
        if !FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) { return "the folder \(folder) does not exist" }
        if !isFolder.boolValue { return "\(folder) is not a folder" }
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue { return "it is a folder" }
        if access(folder, W_OK) != 0 { return "the folder \(folder) is not writable" }
        return "the disk may be full or the file locked"
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a folder"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "a special file"
        }
    }
}

/// A file that could not be read or written; names the file and says why.
public struct FileError: Error, Equatable, CustomStringConvertible {
    /// The file.
    public let path: String
    /// The system's reason.
    public let reason: String

    /// An error for `path`.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// `path: reason`.
    public var description: String { "\(path): \(reason)" }
}

import Foundation
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads tensor bytes that an exporter stored beside the model file (`data_location = EXTERNAL`).
///
/// The `location` must name a file inside the model's folder: absolute paths, `..` components and
/// symbolic links that resolve outside the folder are refused, so a model cannot make us read
/// arbitrary files.
enum ExternalData {
    static func read(_ entries: [String: String], tensor: String, directory: URL?, expectedBytes: Int) throws
        -> TensorStorage
    {
        func fail(_ reason: String) -> ONNXError { .externalData(tensor: tensor, reason: reason) }
        guard let directory else {
            throw fail("the model was not loaded from a file, so there is no folder to read external data from")
        }
        guard let location = entries["location"], !location.isEmpty else { throw fail("no 'location' is given") }
        let path = try resolve(location, in: directory, fail: fail)

        guard let offset = Int(entries["offset"] ?? "0"), offset >= 0 else {
            throw fail("offset '\(entries["offset"] ?? "")' is not a non-negative integer")
        }
        let length: Int
        if let text = entries["length"] {
            guard let value = Int(text), value >= 0 else { throw fail("length '\(text)' is not a non-negative integer") }
            length = value
        } else {
            length = expectedBytes
        }
        guard length == expectedBytes else {
            throw fail("length is \(length) bytes but the tensor's shape needs \(expectedBytes)")
        }

        do {
            return try read(path, location: location, offset: offset, length: length, fail: fail)
        } catch let error as FileError {
            throw fail("cannot read \(location): \(error.reason)")
        }
    }

    /// `length` bytes from `offset` of the file at `path`, checked against its size first.
    private static func read(_ path: String, location: String, offset: Int, length: Int, fail: (String) -> ONNXError) throws
        -> TensorStorage
    {
        try FileIO.withDescriptor(of: path) { fd, fileSize in
            // Compared without adding: an offset near Int.max must not overflow.
            guard offset <= fileSize, length <= fileSize - offset else {
                throw fail("\(length) bytes from offset \(offset) lie beyond the end of \(location) (\(fileSize) bytes)")
            }
            let storage = try TensorStorage(uninitializedByteCount: length)
            var done = 0
            while done < length {
                let n = pread(fd, storage.base + done, length - done, off_t(offset + done))
                guard n > 0 else { throw fail("read of \(location) failed at byte \(offset + done)") }
                done += n
            }
            return storage
        }
    }

    /// The real path of `location` inside `directory`, or an error when it would leave the folder.
    static func resolve(_ location: String, in directory: URL, fail: (String) -> ONNXError) throws -> String {
        guard !location.hasPrefix("/"), !location.contains("\\") else {
            throw fail("location '\(location)' is absolute; external data must be a relative path inside the model's folder")
        }
        guard !location.split(separator: "/").contains("..") else {
            throw fail("location '\(location)' contains '..'; external data must stay inside the model's folder")
        }
        guard let folder = realPath(directory.path) else {
            throw fail("the model's folder \(directory.path) cannot be resolved")
        }
        guard let file = realPath(folder + "/" + location) else {
            throw fail("file '\(location)' does not exist in \(folder)")
        }
        guard file.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/") else {
            throw fail("location '\(location)' resolves to \(file), outside the model's folder \(folder)")
        }
        return file
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

import Foundation
import ShortcutDetect

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Our own sentence for an error that reached the command line without one.
///
/// Library errors name their file, node or flag; Foundation's would print as "The operation could
/// not be completed. (NSCocoaErrorDomain error 256.)". This is the net under the specific
/// messages: it keeps the path and the system's reason that Foundation's errors carry.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String

    /// `error` itself when it is ours (or ArgumentParser's), else a sentence built from it.
    static func wrapping(_ error: Error) -> Error {
        switch error {
        // The library's errors do not know the command line; these two point to the command that lists names.
        case GraphError.unknownTensor:
            return CommandFailure(description: "\(error) (`shortcut-detect inspect` lists them)")
        case LayerError.unknown:
            return CommandFailure(description: "\(error) (`shortcut-detect inspect --layers` lists module paths)")
        case let error as CocoaError:
            let path = error.filePath ?? error.url?.path ?? "a file"
            let action = (512...767).contains(error.code.rawValue) ? "cannot write" : "cannot read"
            let reason = (error.underlying as NSError?).flatMap { underlying in
                underlying.domain == NSPOSIXErrorDomain ? String(cString: strerror(Int32(underlying.code))) : nil
            }
            return CommandFailure(description: "\(action) \(path)" + (reason.map { ": \($0)" } ?? ""))
        case is EncodingError:
            return CommandFailure(description: "a result holds a value JSON cannot store (NaN or infinity)")
        case let error as DecodingError:
            return CommandFailure(description: "a JSON file is not in the expected form (\(AuditError.describe(error)))")
        case let error as NSError where error.domain == NSCocoaErrorDomain && error.code == 3840:
            return CommandFailure(description: "a result holds a value JSON cannot store (NaN or infinity), or a JSON file is malformed")
        default:
            return error
        }
    }
}

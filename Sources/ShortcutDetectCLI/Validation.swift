import ArgumentParser
import Foundation
import ShortcutDetect

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `--max-memory`, on every command that loads a model or images.
struct ResourceOptions: ParsableArguments {
    @Option(
        name: .customLong("max-memory"),
        help: ArgumentHelp(
            "Memory the run may use for tensors and images, e.g. 4G or 512M (default: what the system has available).",
            valueName: "SIZE"))
    var maxMemory: String?

    /// Sets ``MemoryBudget/limit``. Done while validating, so the budget holds before a command
    /// reads its first byte.
    func validate() throws {
        guard let maxMemory else { return }
        do { MemoryBudget.limit = try MemoryBudget.parse(maxMemory) } catch {
            throw ValidationError("--max-memory: \(error)")
        }
    }
}

/// Checks of flag values shared by the commands, run before any work so a bad value costs nothing.
enum FlagCheck {
    /// `value` must be a finite number in `range`.
    static func number<T: BinaryFloatingPoint>(_ value: T, _ flag: String, in range: ClosedRange<T>) throws {
        guard value.isFinite, range.contains(value) else {
            throw ValidationError("\(flag) must be a number from \(range.lowerBound) to \(range.upperBound), got \(value)")
        }
    }

    /// `value` must be at least `minimum`.
    static func count(_ value: Int, _ flag: String, atLeast minimum: Int = 1) throws {
        guard value >= minimum else { throw ValidationError("\(flag) must be at least \(minimum), got \(value)") }
    }

    /// No output may be the same file as an input: writing it would destroy what is being read.
    /// Paths are `(flag, path)`; the comparison follows symbolic links and `..`; `-` (standard
    /// input or output) is no file.
    static func outputsSpareInputs(_ outputs: [(String, String)], inputs: [(String, String)]) throws {
        for (outputFlag, output) in outputs where output != StandardStreams.dash {
            for (inputFlag, input) in inputs where input != StandardStreams.dash && sameFile(output, input) {
                throw ValidationError("\(outputFlag) \(output) is the \(inputFlag) file; writing it would overwrite the input")
            }
        }
    }

    /// Whether two paths name one file: the same device and inode when both exist, else the same
    /// absolute path once resolved.
    static func sameFile(_ a: String, _ b: String) -> Bool {
        var first = stat()
        var second = stat()
        if stat(a, &first) == 0, stat(b, &second) == 0 { return first.st_dev == second.st_dev && first.st_ino == second.st_ino }
        func resolved(_ path: String) -> String {
            URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        }
        return resolved(a) == resolved(b)
    }

    /// A `--token-grid` value, `PREFIX:HxW` with a prefix of 0 or more and at least one row and column.
    static func tokenGrid(_ spec: String) throws -> TokenGrid {
        let parts = spec.split(whereSeparator: { $0 == ":" || $0 == "x" }).map { Int($0) }
        guard parts.count == 3, let prefix = parts[0], let height = parts[1], let width = parts[2] else {
            throw ValidationError("--token-grid expects PREFIX:HxW, e.g. 1:14x14, got '\(spec)'")
        }
        let grid = TokenGrid(prefixTokens: prefix, height: height, width: width)
        do { _ = try grid.tokenCount() } catch { throw ValidationError("--token-grid \(spec): \(error)") }
        return grid
    }
}

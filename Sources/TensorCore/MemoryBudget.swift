import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one limit that every size taken from a file, a tensor's values or a flag is checked
/// against before anything is allocated.
///
/// A model, an image header or a `.npy` header can declare any size. We compute it with
/// overflow-checked arithmetic and compare it with this budget first, so a
/// 100-byte file that asks for 10 GB ends in an error naming it, not in an abort or a machine
/// that swaps. Tensor buffers count against the budget for as long as they
/// live; other large buffers (decoded and resized images) are counted while they are made, or checked
/// before.
///
/// The default is the memory available when the budget is first consulted: `MemAvailable` from
/// `/proc/meminfo` on Linux (or the cgroup's limit, when that is smaller), physical memory
/// elsewhere. Set ``limit`` (the command line's `--max-memory`) to bound a run explicitly:
///
/// ```swift
/// MemoryBudget.limit = try MemoryBudget.parse("4G")
/// ```
public enum MemoryBudget {
    private static let state = State()

    /// The most bytes of tensors and decoding buffers the process may hold at once.
    public static var limit: Int {
        get { state.withLock { $0.limit } }
        set { state.withLock { $0.limit = max(newValue, 0) } }
    }

    /// Runs `body` with at most `limit` bytes for what it allocates on the calling task (or
    /// thread), on top of the process-wide ``limit``: a per-call budget, such as one request's.
    /// Tensors are allocated on the calling thread, so this covers everything a call such as a
    /// forward pass sizes from its inputs; the small scratch buffers that kernels' worker threads
    /// take count against ``limit`` alone. Scopes nest; each counts what is allocated inside it.
    public static func withLimit<R>(_ limit: Int, _ body: () throws -> R) rethrows -> R {
        try $scope.withValue(Scope(limit: max(limit, 0), parent: scope), operation: body)
    }

    /// A ``withLimit(_:_:)`` in force, and the bytes allocated inside it that are still alive.
    final class Scope: @unchecked Sendable {
        let limit: Int
        let parent: Scope?
        /// Guarded by the budget's lock.
        var inUse = 0

        init(limit: Int, parent: Scope?) {
            self.limit = limit
            self.parent = parent
        }
    }

    @TaskLocal private static var scope: Scope?

    /// Bytes counted against the budget and the scopes they were allocated in, to give back.
    struct Charge {
        let bytes: Int
        let scope: Scope?
        static let none = Charge(bytes: 0, scope: nil)
    }

    /// Bytes of tensor storage alive now.
    public static var inUse: Int { state.withLock { $0.inUse } }

    /// The memory this system can give us now (see the type's discussion), in bytes.
    public static var available: Int {
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        #if os(Linux)
        var best = meminfoAvailable() ?? physical
        if let cgroup = cgroupRoom() { best = min(best, cgroup) }
        return best
        #else
        return physical
        #endif
    }

    /// Throws unless a buffer of `bytes` fits beside the tensors alive now; `what` (such as
    /// "image photo.png decoded at 1000000x1") names it in the error.
    package static func check(_ bytes: Int, for what: @autoclosure () -> String) throws {
        let scope = scope
        if let (inUse, limit) = state.withLock({ refusal(bytes, $0, scope) }) {
            throw TensorError.overBudget(what: what(), bytes: bytes, inUse: inUse, limit: limit)
        }
    }

    /// Runs `body` with `bytes` counted as in use, for a buffer that is not a tensor (a decoded
    /// image); throws before `body` when they do not fit.
    package static func withReservation<R>(_ bytes: Int, for what: @autoclosure () -> String, _ body: () throws -> R) throws -> R {
        let charge = try reserve(bytes, for: what)
        defer { release(charge) }
        return try body()
    }

    /// Counts `bytes` as in use, or throws when they do not fit.
    static func reserve(_ bytes: Int, for what: () -> String) throws -> Charge {
        let scope = scope
        let refused: (Int, Int)? = state.withLock { budget in
            if let refused = refusal(bytes, budget, scope) { return refused }
            budget.inUse += bytes
            var current = scope
            while let open = current {
                open.inUse += bytes
                current = open.parent
            }
            return nil
        }
        if let (inUse, limit) = refused {
            throw TensorError.overBudget(what: what(), bytes: bytes, inUse: inUse, limit: limit)
        }
        return Charge(bytes: bytes, scope: scope)
    }

    /// Gives back what ``reserve(_:for:)`` counted.
    static func release(_ charge: Charge) {
        state.withLock { budget in
            budget.inUse -= charge.bytes
            var current = charge.scope
            while let open = current {
                open.inUse -= charge.bytes
                current = open.parent
            }
        }
    }

    /// The (in use, limit) of the process or scope that has no room for `bytes`, or `nil`.
    /// Called with the lock held.
    private static func refusal(_ bytes: Int, _ budget: State.Budget, _ scope: Scope?) -> (Int, Int)? {
        guard bytes >= 0, bytes <= budget.limit - budget.inUse else { return (budget.inUse, budget.limit) }
        var current = scope
        while let open = current {
            guard bytes <= open.limit - open.inUse else { return (open.inUse, open.limit) }
            current = open.parent
        }
        return nil
    }

    /// The product of `factors` (element counts, sizes), or `nil` when one is negative or the
    /// product overflows: the way to size anything a file or flag describes.
    package static func product(_ factors: Int...) -> Int? { product(factors) }

    /// The product of `factors`, or `nil` when one is negative or the product overflows.
    package static func product(_ factors: [Int]) -> Int? {
        var product = 1
        for factor in factors {
            guard factor >= 0 else { return nil }
            let (next, overflow) = product.multipliedReportingOverflow(by: factor)
            guard !overflow else { return nil }
            product = next
        }
        return product
    }

    /// Parses a size such as `4G`, `512M`, `1.5GiB` or `1000000` (bytes); units are powers of 1024.
    public static func parse(_ text: String) throws -> Int {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        var number = Substring(trimmed)
        var unit = Substring("")
        while let last = number.last, last.isLetter {
            unit.insert(last, at: unit.startIndex)
            number.removeLast()
        }
        let shifts: [Substring: Int] = ["": 0, "B": 0, "K": 10, "KB": 10, "KIB": 10, "M": 20, "MB": 20, "MIB": 20,
                                        "G": 30, "GB": 30, "GIB": 30, "T": 40, "TB": 40, "TIB": 40]
        guard let shift = shifts[unit], let value = Double(number), value.isFinite, value > 0,
            value * Double(1 << shift) <= 0x1p62
        else {
            throw TensorError.invalidSize(text: text)
        }
        return Int(value * Double(1 << shift))
    }

    /// `bytes` for people: "512 B", "1.5 MiB", "10.0 GiB".
    public static func describe(_ bytes: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes)
        var index = 0
        while abs(value) >= 1024, index < units.count - 1 {
            value /= 1024
            index += 1
        }
        return index == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[index])
    }

    private final class State: @unchecked Sendable {
        struct Budget {
            var limit = MemoryBudget.available
            var inUse = 0
        }
        private let lock = NSLock()
        private var budget: Budget?

        func withLock<R>(_ body: (inout Budget) -> R) -> R {
            lock.withLock {
                // Read the system's numbers on first use, not at load: a library that never
                // allocates never reads /proc.
                var current = budget ?? Budget()
                defer { budget = current }
                return body(&current)
            }
        }
    }

    /// The value of a `Field:  N kB` line of a `/proc` file (`/proc/meminfo`, `/proc/<pid>/status`),
    /// in bytes, or `nil` where the file or the field is missing or unreadable.
    package static func procKilobytes(_ field: String, in path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
            return kilobytes.multipliedReportingOverflow(by: 1024).overflow ? nil : kilobytes * 1024
        }
        return nil
    }

    #if os(Linux)
    /// `MemAvailable` from `/proc/meminfo`, in bytes.
    private static func meminfoAvailable() -> Int? { procKilobytes("MemAvailable", in: "/proc/meminfo") }

    /// What the container's cgroup still allows (v2 `memory.max`, else v1 `memory.limit_in_bytes`),
    /// or `nil` without a limit.
    private static func cgroupRoom() -> Int? {
        func number(_ path: String) -> Int? {
            (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        for (limitFile, usageFile) in [
            ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
            ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
        ] {
            // v1 reports "no limit" as a huge number near Int.max.
            guard let limit = number(limitFile), limit < 1 << 60 else { continue }
            return max(limit - (number(usageFile) ?? 0), 0)
        }
        return nil
    }
    #endif
}

import Dispatch
import Foundation

#if os(Linux)
import Synchronization
#endif

/// The one pool of threads every kernel uses, matrix products included: loops are split into
/// disjoint parts that run at once on up to ``width`` threads.
///
/// The BLAS itself runs single-threaded inside each part (see ``BLAS``), so there is never a
/// second set of threads spinning while ours work: on a machine with few cores that contention
/// costs more than it brings.
package enum Parallel {
    private static let state = WidthState()

    /// How many threads kernels use: ``setWidth(_:)``, else `OPENBLAS_NUM_THREADS` or
    /// `OMP_NUM_THREADS` from the environment, else the number of active processors.
    package static var width: Int { state.value }

    /// Sets how many threads kernels use (at least 1).
    package static func setWidth(_ count: Int) { state.value = max(count, 1) }

    /// Calls `body` on consecutive, disjoint parts of `0..<count`, at once on up to ``width``
    /// threads; work smaller than `grain` elements per part stays on the calling thread.
    package static func forEach(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
        let parts = min(width, count / max(grain, 1))
        guard parts > 1 else {
            if count > 0 { body(0..<count) }
            return
        }
        // The parts are disjoint and both runners return only when all have run, so the
        // caller's closure (and the memory it writes) outlives every use.
        withoutActuallyEscaping(body) { body in
            let split: (Int) -> Void = { part in body(count * part / parts..<count * (part + 1) / parts) }
            #if os(Linux)
            SpinningPool.shared.run(parts: parts, split)
            #else
            let shared = UncheckedSendable(split)
            DispatchQueue.concurrentPerform(iterations: parts) { shared.value($0) }
            #endif
        }
    }
}

extension Parallel {
    /// ``forEach(_:grain:_:)`` for a body that can fail (a part that allocates scratch): every part
    /// runs, then the first error thrown is rethrown.
    package static func tryForEach(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) throws -> Void) throws {
        let failure = FirstError()
        forEach(count, grain: grain) { range in
            do { try body(range) } catch { failure.record(error) }
        }
        if let error = failure.error { throw error }
    }
}

/// The first error recorded from any thread.
private final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?
    func record(_ error: Error) { lock.withLock { if stored == nil { stored = error } } }
    var error: Error? { lock.withLock { stored } }
}

#if os(Linux)
/// Worker threads that spin briefly between jobs before they sleep.
///
/// A forward pass hands out a hundred or more short parallel loops; waking a parked thread for
/// each (what a dispatch queue does once its threads idle) costs tens of microseconds and, on a
/// two-core machine, made run times swing by a third. Workers here keep polling for the next job
/// for a few tens of microseconds, then block on a condition until work arrives.
final class SpinningPool: @unchecked Sendable {
    static let shared = SpinningPool()

    /// One call's work: parts are claimed by counting, so each runs exactly once.
    private final class Job: @unchecked Sendable {
        var body: ((Int) -> Void)?
        let parts: Int
        let next = Atomic<Int>(0)
        let unfinished: Atomic<Int>

        init(parts: Int, body: @escaping (Int) -> Void) {
            self.parts = parts
            self.body = body
            unfinished = Atomic(parts)
        }

        /// Runs parts until none are left to claim.
        func work() {
            while true {
                let part = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard part < parts else { return }
                run(part)
                unfinished.wrappingSubtract(1, ordering: .releasing)
            }
        }

        /// One part, in its own frame: the reference to `body` is gone before the part counts as
        /// finished, so the caller may let the closure go as soon as the count reaches zero.
        @inline(never)
        private func run(_ part: Int) { body?(part) }
    }

    private let condition = NSCondition()
    private let generation = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private var current: Job?
    private var workers = 0

    /// Runs `body(0..<parts)`, the calling thread taking parts too.
    func run(parts: Int, _ body: @escaping (Int) -> Void) {
        startWorkers(parts - 1)
        let job = Job(parts: parts, body: body)
        condition.lock()
        current = job
        generation.wrappingAdd(1, ordering: .releasing)
        if sleepers.load(ordering: .relaxed) > 0 { condition.broadcast() }
        condition.unlock()
        job.work()
        while job.unfinished.load(ordering: .acquiring) > 0 {}
        // Every part has run; drop the closure so no worker can reach it after we return.
        condition.lock()
        job.body = nil
        if current === job { current = nil }
        condition.unlock()
    }

    private func startWorkers(_ wanted: Int) {
        condition.lock()
        defer { condition.unlock() }
        while workers < wanted {
            workers += 1
            let thread = Thread { [unowned self] in self.workerLoop() }
            thread.name = "shortcut-detect kernel \(workers)"
            thread.start()
        }
    }

    private func workerLoop() {
        var seen = generation.load(ordering: .acquiring)
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < 20_000 { continue }
                condition.lock()
                sleepers.wrappingAdd(1, ordering: .relaxed)
                while generation.load(ordering: .acquiring) == seen { condition.wait() }
                sleepers.wrappingSubtract(1, ordering: .relaxed)
                condition.unlock()
            }
            seen = generation.load(ordering: .acquiring)
            condition.lock()
            let job = current
            condition.unlock()
            job?.work()
        }
    }
}
#endif

/// The thread count, behind a lock so any thread may set or read it.
private final class WidthState: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Int

    init() {
        let environment = ProcessInfo.processInfo.environment
        let requested = (environment["OPENBLAS_NUM_THREADS"] ?? environment["OMP_NUM_THREADS"]).flatMap { Int($0) }
        stored = max(requested ?? ProcessInfo.processInfo.activeProcessorCount, 1)
    }

    var value: Int {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

#if !os(Linux)
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
#endif

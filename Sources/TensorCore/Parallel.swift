import Dispatch
import Foundation

/// The one pool of threads every kernel uses, matrix products included: loops are split into
/// disjoint parts that run at once on up to ``width`` threads.
///
/// The BLAS itself runs single-threaded inside each part (see ``BLAS``), so there is never a
/// second set of threads spinning while ours work: on a machine with few cores that contention
/// costs more than it brings.
public enum Parallel {
    private static let state = WidthState()

    /// How many threads kernels use: ``setWidth(_:)``, else `OPENBLAS_NUM_THREADS` or
    /// `OMP_NUM_THREADS` from the environment, else the number of active processors.
    public static var width: Int { state.value }

    /// Sets how many threads kernels use (at least 1).
    public static func setWidth(_ count: Int) { state.value = max(count, 1) }

    /// Calls `body` on consecutive, disjoint parts of `0..<count`, at once on up to ``width``
    /// threads; work smaller than `grain` elements per part stays on the calling thread.
    public static func forEach(_ count: Int, grain: Int = 32_768, _ body: (Range<Int>) -> Void) {
        let parts = min(width, count / max(grain, 1))
        guard parts > 1 else {
            if count > 0 { body(0..<count) }
            return
        }
        // The parts are disjoint and `concurrentPerform` returns only when all have run, so the
        // caller's closure (and the memory it writes) outlives every use.
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                shared.value(count * part / parts..<count * (part + 1) / parts)
            }
        }
    }
}

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

private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

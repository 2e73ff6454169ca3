import Dispatch

#if canImport(Accelerate)
import Foundation
#else
import CBLAS
#endif

/// Splits loops over the threads the BLAS is allowed, so the kernels between two matrix
/// products use the same cores the products do, and never more.
public enum Parallel {
    /// The number of threads kernels may use: the BLAS thread count (``BLAS/setThreads(_:)``).
    public static var width: Int {
        #if canImport(Accelerate)
        return ProcessInfo.processInfo.activeProcessorCount
        #else
        return max(Int(openblas_get_num_threads()), 1)
        #endif
    }

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

private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

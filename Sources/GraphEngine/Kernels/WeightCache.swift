import Foundation
import TensorCore

/// What a node derives from one of its weight tensors (Winograd filters, packed panels), made on
/// first use and kept while the node sees the same tensor, as it always does with a constant (an initializer or folded value):
/// paid once instead of on every run.
final class WeightCache<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var source: TensorStorage?
    private var derived: Value?

    /// The value derived from `weights`, or `make()`'s, which then replaces it.
    func value(for weights: Tensor, _ make: () throws -> Value) rethrows -> Value {
        if let hit = lock.withLock({ source === weights.storage ? derived : nil }) { return hit }
        let fresh = try make()
        lock.withLock {
            source = weights.storage
            derived = fresh
        }
        return fresh
    }
}

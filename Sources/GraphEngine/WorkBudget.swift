import TensorCore

/// A bound on the multiply-adds one forward pass may spend, for callers that run models they do
/// not trust to be cheap.
///
/// A 200-byte model can declare a convolution of tens of billions of multiply-adds: nothing to
/// allocate beyond the memory budget, yet minutes of work. Inside ``withLimit(_:_:)`` each forward
/// pass adds up what its convolutions, products, Einsum contractions, pools, LRN, recurrent layers
/// and attention will cost (from their input shapes, before they run) and stops with an error
/// naming the node that would cross the limit; every other op's work is linear in the tensors it
/// reads and writes, which the memory budget bounds. Outside it nothing is counted.
///
/// ```swift
/// let shapes = try WorkBudget.withLimit(1 << 30) { try executor.run(feeds) }
/// ```
public enum WorkBudget {
    /// Runs `body` with forward passes it starts on the calling task bounded to `limit`
    /// multiply-adds each. Scopes nest; the innermost applies.
    public static func withLimit<R>(_ limit: Int, _ body: () throws -> R) rethrows -> R {
        try $limit.withValue(max(limit, 0), operation: body)
    }

    /// The bound in force on this task, nil outside ``withLimit(_:_:)``.
    @TaskLocal static var limit: Int?

    /// What a pass has spent so far against `limit`.
    struct Meter {
        let limit: Int
        private(set) var spent = 0

        /// Adds a step's cost, or throws when it would cross the limit.
        mutating func charge(_ cost: Int, node: String) throws {
            let (total, overflow) = spent.addingReportingOverflow(cost)
            guard !overflow, total <= limit else {
                throw GraphError.nodeFailed(
                    node: node,
                    reason: "it would take \(cost) multiply-adds, more than the \(limit) this pass may spend"
                        + (spent > 0 ? " (\(spent) spent before it)" : ""))
            }
            spent = total
        }
    }

    /// The product of `factors` (``MemoryBudget``'s checked product), or `Int.max` when it
    /// overflows: a cost past any limit.
    static func product(_ factors: Int...) -> Int { product(factors) }

    /// The product of `factors`, or `Int.max` when it overflows.
    static func product(_ factors: [Int]) -> Int { MemoryBudget.product(factors) ?? .max }
}

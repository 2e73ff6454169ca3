import Foundation

/// How many forward and reverse passes an ``Executor`` ran: what tests read to check that a
/// command computes each batch once, and what a profile reports.
public final class PassCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var counts = (forward: 0, reverse: 0)

    /// Forward evaluations of the graph (``Executor/run(_:fetch:)``, and the forward half of
    /// ``Executor/gradients(_:of:output:wrt:fetch:guided:)``).
    public var forward: Int { lock.withLock { counts.forward } }
    /// Reverse passes (``Executor/gradients(_:of:output:wrt:fetch:guided:)``).
    public var reverse: Int { lock.withLock { counts.reverse } }

    func countForward() { lock.withLock { counts.forward += 1 } }
    func countReverse() { lock.withLock { counts.reverse += 1 } }
}

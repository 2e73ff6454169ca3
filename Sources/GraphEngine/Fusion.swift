import TensorCore

// Fusing a node with the activation that alone reads its output, so the activation is applied
// while the producer's result is still in cache and the intermediate tensor is never stored.

/// An activation a producing op can apply to its own output on the way out.
public enum Activation: Sendable {
    case relu
}

/// An op that can apply a following ``Activation`` to its output in the same pass.
protocol ActivationFusing: Operator {
    /// This op with `activation` applied to its (single) output.
    func fused(with activation: Activation) -> any Operator
    /// Whether ``fused(with:)`` builds the activation in (a wrapper may hold an op that cannot).
    var canFuse: Bool { get }
}

extension ActivationFusing {
    var canFuse: Bool { true }
}

/// A producer and the activation that is its output's only reader, run as one step.
///
/// The executor takes a fusion only when nothing else needs the intermediate: it is not fetched
/// and no reverse pass records either node. Otherwise the two nodes run as written.
struct Fusion: Sendable {
    /// The producer with the activation built in.
    let op: any Operator
    /// The index (into the executor's steps) of the absorbed activation node.
    let tail: Int
    /// The slot between the two, which a fused run never fills.
    let intermediate: Int

    /// Fusions keyed by the producer's step index.
    static func plan(_ steps: [Executor.Step], graphOutputs: Set<Int>) -> [Int: Fusion] {
        var readers: [Int: [Int]] = [:]
        for (index, step) in steps.enumerated() {
            for case let slot? in Set(step.inputs) { readers[slot, default: []].append(index) }
        }
        var fusions: [Int: Fusion] = [:]
        for (index, step) in steps.enumerated() {
            guard let producer = step.op as? ActivationFusing, producer.canFuse, step.outputs.count == 1, let slot = step.outputs[0],
                !graphOutputs.contains(slot), let only = readers[slot], only.count == 1
            else { continue }
            let tail = steps[only[0]]
            guard tail.node.domain.isEmpty, tail.node.opType == "Relu", tail.inputs == [slot] else { continue }
            fusions[index] = Fusion(op: producer.fused(with: .relu), tail: only[0], intermediate: slot)
        }
        return fusions
    }
}

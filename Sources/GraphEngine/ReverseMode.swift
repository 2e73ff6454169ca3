import Foundation
import ONNXModel
import TensorCore

/// Replaces the backward rule of every node of one op type during one reverse pass.
///
/// The closure gets the gradients arriving at the node's outputs (`nil` where none flows) and the
/// op's own rule, and returns the gradients of the node's inputs, positioned as its inputs.
/// Guided backpropagation, for one, keeps only the positive part of what Relu's own rule returns.
public typealias BackwardOverride =
    @Sendable (_ outputGradients: [Tensor?], _ standard: () throws -> [Tensor?]) throws -> [Tensor?]

/// The outcome of a reverse pass.
public struct GradientResult: Sendable {
    /// The differentiated output, e.g. the logits.
    public let output: Tensor
    /// Forward values of the `wrt` and `fetch` tensors, by name.
    public let values: [String: Tensor]
    /// `∂L/∂t` for each `wrt` tensor `t`, by name, shaped like `t`.
    public let gradients: [String: Tensor]
}

extension Executor {
    /// Runs the graph forward, then propagates the seed gradient `∂L/∂output` back to each `wrt` tensor.
    ///
    /// Only nodes that lie between the `wrt` tensors and the output take part in the reverse
    /// pass; weights get no gradients. Each node keeps only the forward values its backward
    /// rule declares, and drops them once its backward has run.
    ///
    /// - Parameters:
    ///   - feeds: One tensor per graph input.
    ///   - seed: `∂L/∂y` for the value `y` of `output`, shaped like it: the gradient of the scalar `L`
    ///     being differentiated. It is given `y` once the forward pass has computed it.
    ///   - output: The output the seed belongs to; the first graph output by default.
    ///   - wrt: Tensors to differentiate with respect to: any intermediate, or a graph input.
    ///   - fetch: Further forward values to return.
    ///   - overrides: Backward rules to use instead of the ops' own, by op type (`"Relu"`).
    public func gradients(
        _ feeds: [String: Tensor], seed: (Tensor) throws -> Tensor, output: String? = nil, wrt: [String],
        fetch: [String] = [], overrides: [String: BackwardOverride] = [:]
    ) throws -> GradientResult {
        guard let outputName = output ?? outputs.first?.name else { throw GraphError.inputMismatch("the model has no outputs") }
        let outputSlot = try slot(outputName)
        let sourceSlots = try wrt.map(slot)
        let fetchSlots = try fetch.map(slot)
        let sources = Set(sourceSlots)

        // The part of the graph between the sources and the output.
        var depends = [Bool](repeating: false, count: slots.count)
        for source in sources { depends[source] = true }
        var reaches = [Bool](repeating: false, count: slots.count)
        reaches[outputSlot] = true
        for step in steps where step.inputs.contains(where: { $0.map { depends[$0] } ?? false }) {
            for case let slot? in step.outputs { depends[slot] = true }
        }
        for step in steps.reversed() where step.outputs.contains(where: { $0.map { reaches[$0] } ?? false }) {
            for case let slot? in step.inputs { reaches[slot] = true }
        }
        let onPath = steps.map { step in
            step.inputs.contains { $0.map { depends[$0] } ?? false } && step.outputs.contains { $0.map { reaches[$0] } ?? false }
        }

        // Forward, keeping what each on-path backward rule reads.
        var records: [Int: BackwardRecord] = [:]
        let values = try evaluate(
            feeds, keeping: [outputSlot] + sourceSlots + fetchSlots, observes: { onPath[$0] },
            observe: { index, inputs, results in
                guard onPath[index] else { return }
                let wanted = self.steps[index].inputs.map { $0.map { depends[$0] } ?? false }
                let saved = (self.steps[index].op as? DifferentiableOperator)?.savedForBackward(wanted: wanted) ?? .nothing
                records[index] = BackwardRecord(inputs: inputs, results: results, saved: saved)
            })
        guard let outputValue = values[outputSlot] else { throw GraphError.nodeFailed(node: outputName, reason: "was not computed") }

        let seedValue = try seed(outputValue)
        guard seedValue.shape == outputValue.shape, seedValue.dtype.isFloatingPoint else {
            throw GraphError.inputMismatch(
                "the seed gradient is \(seedValue.dtype)\(seedValue.shape); output '\(outputName)' is \(outputValue.dtype)\(outputValue.shape)")
        }
        var gradients: [Int: Tensor] = [outputSlot: try seedValue.converted(to: outputValue.dtype)]
        for index in steps.indices.reversed() where onPath[index] {
            guard let record = records.removeValue(forKey: index) else { continue }
            let step = steps[index]
            let outputGradients = step.outputs.map { $0.flatMap { gradients[$0] } }
            guard outputGradients.contains(where: { $0 != nil }) else { continue }
            let rule = step.op as? DifferentiableOperator
            let wanted = step.inputs.enumerated().map { position, slot in
                slot.map { depends[$0] } == true
                    && (record.inputTypes[position]?.isFloatingPoint == true
                        || rule?.passesGradient(toIntegerInput: position) == true)
            }
            guard wanted.contains(true) else { continue }
            guard let op = rule else {
                throw GraphError.nodeFailed(node: step.node.label, reason: "has no gradient rule, so gradients cannot flow through it")
            }
            let inputGradients: [Tensor?]
            do {
                let backwardStep = record.step(outputGradients: outputGradients, wanted: wanted)
                if let override = overrides[step.node.opType] {
                    inputGradients = try override(outputGradients) { try op.backward(backwardStep) }
                } else {
                    inputGradients = try op.backward(backwardStep)
                }
            } catch {
                throw GraphError.nodeFailed(node: step.node.label, reason: "backward: \(error)")
            }
            for (position, slot) in step.inputs.enumerated() {
                guard let slot, wanted[position], position < inputGradients.count, let gradient = inputGradients[position],
                    let shape = record.inputShapes[position]
                else { continue }
                // Un-broadcasting happens here, once, for every rule.
                let shaped = try gradient.summed(toShape: shape)
                gradients[slot] = try gradients[slot].map { try $0.adding(shaped) } ?? shaped
            }
            for case let slot? in step.outputs where !sources.contains(slot) { gradients[slot] = nil }
        }

        var result: [String: Tensor] = [:]
        var forward: [String: Tensor] = [:]
        for (name, slot) in zip(wrt, sourceSlots) {
            guard let value = values[slot] else { continue }
            forward[name] = value
            result[name] = try gradients[slot] ?? Tensor(zeros: value.dtype, shape: value.shape)
        }
        for (name, slot) in zip(fetch, fetchSlots) { forward[name] = values[slot] }
        return GradientResult(output: outputValue, values: forward, gradients: result)
    }
}

/// What the forward pass keeps for one node's backward rule.
struct BackwardRecord {
    let inputs: [Tensor?]
    let inputShapes: [[Int]?]
    let inputTypes: [DType?]
    let outputs: [Tensor?]
    let outputShapes: [[Int]?]
    let outputTypes: [DType?]

    init(inputs: OpInputs, results: [Tensor?], saved: SavedValues) {
        self.inputs = inputs.tensors.enumerated().map { saved.inputs.contains($0.offset) ? $0.element : nil }
        inputShapes = inputs.tensors.map { $0?.shape }
        inputTypes = inputs.tensors.map { $0?.dtype }
        outputs = results.enumerated().map { saved.outputs.contains($0.offset) ? $0.element : nil }
        outputShapes = results.map { $0?.shape }
        outputTypes = results.map { $0?.dtype }
    }

    func step(outputGradients: [Tensor?], wanted: [Bool]) -> BackwardStep {
        BackwardStep(
            inputs: inputs, inputShapes: inputShapes, inputTypes: inputTypes, outputs: outputs, outputShapes: outputShapes,
            outputTypes: outputTypes, outputGradients: outputGradients, wanted: wanted)
    }
}

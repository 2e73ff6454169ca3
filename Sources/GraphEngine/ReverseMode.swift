import Foundation
import ONNXModel
import TensorCore

/// The scalar the reverse pass differentiates, as a function of one model output.
public enum GradientTarget: Sendable {
    /// `Σₙ y[n, cₙ]`: one class logit per sample (pytorch-grad-cam's `ClassifierOutputTarget`);
    /// `nil` picks each sample's highest-scoring class.
    case logit(classes: [Int]?)
    /// `Σₙ softmax(y[n])[cₙ]`: one class probability per sample (`ClassifierOutputSoftmaxTarget`).
    case probability(classes: [Int]?)
    /// Any function of the output; the closure returns its gradient `∂L/∂y`, shaped like `y`.
    case custom(@Sendable (Tensor) throws -> Tensor)

    /// `∂L/∂y` for the output `y`.
    func seed(for output: Tensor) throws -> Tensor {
        switch self {
        case .custom(let gradient):
            let seed = try gradient(output)
            guard seed.shape == output.shape, seed.dtype.isFloatingPoint else {
                throw OpError("the custom target's gradient is \(seed.dtype)\(seed.shape); the output is \(output.dtype)\(output.shape)")
            }
            return try seed.converted(to: output.dtype)
        case .logit(let classes), .probability(let classes):
            guard output.rank == 2 else { throw OpError("class targets need a [batch, classes] output, got \(output.shape)") }
            let (batch, width) = (output.shape[0], output.shape[1])
            let logits = try output.converted(to: .float64).scalars(as: Double.self)
            let classes = classes ?? GradientTarget.argmax(logits, rows: batch, width: width)
            guard classes.count == batch else {
                throw OpError("\(classes.count) target classes were given for a batch of \(batch)")
            }
            if let bad = classes.first(where: { $0 < 0 || $0 >= width }) {
                throw OpError("class \(bad) is out of range: the output has \(width) classes")
            }
            var seed = [Double](repeating: 0, count: batch * width)
            for (n, c) in classes.enumerated() {
                guard case .probability = self else {
                    seed[n * width + c] = 1
                    continue
                }
                let p = ClassProbabilities.softmax(logits[n * width..<(n + 1) * width])
                for j in 0..<width { seed[n * width + j] = p[c] * ((j == c ? 1 : 0) - p[j]) }
            }
            return try Tensor(shape: output.shape, scalars: seed).converted(to: output.dtype)
        }
    }
}

extension GradientTarget {
    /// The index of the largest value in each row (the first one on ties, as NumPy's argmax).
    public static func argmax(_ values: [Double], rows: Int, width: Int) -> [Int] {
        (0..<rows).map { row in
            var best = 0
            for j in 1..<max(width, 1) where values[row * width + j] > values[row * width + best] { best = j }
            return best
        }
    }
}

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
    /// Runs the graph forward, then differentiates `target` back to each `wrt` tensor.
    ///
    /// Only nodes that lie between the `wrt` tensors and the output take part in the reverse
    /// pass; weights get no gradients. Each node keeps only the forward values its backward
    /// rule declares, and drops them once its backward has run.
    ///
    /// - Parameters:
    ///   - feeds: One tensor per graph input.
    ///   - target: The scalar to differentiate, as a function of `output`.
    ///   - output: The output the target reads; the first graph output by default.
    ///   - wrt: Tensors to differentiate with respect to: any intermediate, or a graph input.
    ///   - fetch: Further forward values to return.
    ///   - guided: Guided backpropagation through every Relu.
    public func gradients(
        _ feeds: [String: Tensor], of target: GradientTarget, output: String? = nil, wrt: [String],
        fetch: [String] = [], guided: Bool = false
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
        passes.countReverse()

        var gradients: [Int: Tensor] = [outputSlot: try target.seed(for: outputValue)]
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
                inputGradients = try op.backward(record.step(outputGradients: outputGradients, wanted: wanted, guided: guided))
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

    func step(outputGradients: [Tensor?], wanted: [Bool], guided: Bool) -> BackwardStep {
        BackwardStep(
            inputs: inputs, inputShapes: inputShapes, inputTypes: inputTypes, outputs: outputs, outputShapes: outputShapes,
            outputTypes: outputTypes, outputGradients: outputGradients, wanted: wanted, guided: guided)
    }
}

import Dispatch
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
        try reverse(feeds, seed: seed, output: output, wrt: wrt, fetch: fetch, overrides: overrides, clock: nil)
    }

    /// Runs ``gradients(_:seed:output:wrt:fetch:overrides:)`` once and times each step of it.
    package func profileGradients(
        _ feeds: [String: Tensor], seed: (Tensor) throws -> Tensor, output: String? = nil, wrt: [String]
    ) throws -> GradientProfile {
        let clock = StepClock()
        _ = try reverse(feeds, seed: seed, output: output, wrt: wrt, fetch: [], overrides: [:], clock: clock)
        return GradientProfile(forward: clock.forward, backward: clock.backward)
    }

    /// The reverse pass; `clock` (for profiles) hears of every forward and backward step.
    private func reverse(
        _ feeds: [String: Tensor], seed: (Tensor) throws -> Tensor, output: String?, wrt: [String], fetch: [String],
        overrides: [String: BackwardOverride], clock: StepClock?
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

        // Steps that run as written so their backward rules see their own inputs and outputs; a
        // fusion with a rule of its own (MatMul+Add, the GELU chain) runs fused and is
        // differentiated as one step, unless an override replaces the rule of one of its nodes.
        var fusedAsOne = Set<Int>()
        for (producer, fusion) in fusions
        where fusion.differentiable && ([producer] + fusion.tails).allSatisfy({ overrides[steps[$0].node.opType] == nil }) {
            fusedAsOne.insert(producer)
            fusedAsOne.formUnion(fusion.tails)
        }

        // Forward, keeping what each on-path backward rule reads, under the last step it covers.
        var records: [Int: BackwardRecord] = [:]
        clock?.start()
        let values = try evaluate(
            feeds, keeping: [outputSlot] + sourceSlots + fetchSlots, unfused: { onPath[$0] && !fusedAsOne.contains($0) },
            finished: clock.map { clock in { index, fused in clock.forward(self.steps[index], fused: fused) } },
            observe: { index, fusion, inputs, results in
                guard onPath[index] else { return }
                let record = BackwardRecord(
                    step: index, fusion: fusion, of: self.steps, inputs: inputs, results: results,
                    wanted: { $0.map { depends[$0] } ?? false })
                records[fusion?.writer ?? index] = record
            })
        guard let outputValue = values[outputSlot] else { throw GraphError.nodeFailed(node: outputName, reason: "was not computed") }
        passes.countReverse()

        let seedValue = try seed(outputValue)
        guard seedValue.shape == outputValue.shape, seedValue.dtype.isFloatingPoint else {
            throw GraphError.inputMismatch(
                "the seed gradient is \(seedValue.dtype)\(seedValue.shape); output '\(outputName)' is \(outputValue.dtype)\(outputValue.shape)")
        }
        var gradients: [Int: Tensor] = [outputSlot: try seedValue.converted(to: outputValue.dtype)]
        clock?.backward(StepTiming.seedLabel)
        for index in steps.indices.reversed() where onPath[index] {
            guard let record = records.removeValue(forKey: index) else { continue }
            let node = steps[record.index].node
            let outputGradients = record.outputSlots.map { $0.flatMap { gradients[$0] } }
            guard outputGradients.contains(where: { $0 != nil }) else { continue }
            let rule = record.op as? DifferentiableOperator
            let wanted = record.inputSlots.enumerated().map { position, slot in
                slot.map { depends[$0] } == true
                    && (record.inputTypes[position]?.isFloatingPoint == true
                        || rule?.passesGradient(toIntegerInput: position) == true)
            }
            guard wanted.contains(true) else { continue }
            guard let op = rule else {
                throw GraphError.nodeFailed(node: node.label, reason: "has no gradient rule, so gradients cannot flow through it")
            }
            let inputGradients: [Tensor?]
            do {
                let backwardStep = record.step(outputGradients: outputGradients, wanted: wanted)
                if let override = overrides[node.opType] {
                    inputGradients = try override(outputGradients) { try op.backward(backwardStep) }
                } else {
                    inputGradients = try op.backward(backwardStep)
                }
            } catch {
                throw GraphError.nodeFailed(node: node.label, reason: "backward: \(error)")
            }
            clock?.backward(node, label: record.label)
            for (position, slot) in record.inputSlots.enumerated() {
                guard let slot, wanted[position], position < inputGradients.count, let gradient = inputGradients[position],
                    let shape = record.inputShapes[position]
                else { continue }
                // Un-broadcasting happens here, once, for every rule.
                let shaped = try gradient.summed(toShape: shape)
                gradients[slot] = try gradients[slot].map { try $0.adding(shaped) } ?? shaped
            }
            for case let slot? in record.outputSlots where !sources.contains(slot) { gradients[slot] = nil }
            clock?.backward(StepTiming.accumulationLabel)
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

/// Where the time of one reverse pass went.
package struct GradientProfile: Sendable {
    /// The forward steps, as ``Executor/profile(_:)`` reports them (steps a backward rule records run unfused).
    package let forward: [Executor.StepTiming]
    /// The backward steps: each node's rule under its op type; the seed gradient under
    /// ``Executor/StepTiming/seedLabel``; summing gradients to their inputs' shapes and adding
    /// those that meet under ``Executor/StepTiming/accumulationLabel``, one entry per node.
    package let backward: [Executor.StepTiming]
}

extension Executor.StepTiming {
    /// The op type of the seed gradient's entry in a ``GradientProfile``.
    package static let seedLabel = "(seed gradient)"
    /// The op type of gradient accumulation's entries in a ``GradientProfile``.
    package static let accumulationLabel = "(sum and accumulate)"
}

/// Laps of a reverse pass, for ``GradientProfile``.
private final class StepClock {
    var forward: [Executor.StepTiming] = []
    var backward: [Executor.StepTiming] = []
    private var stopwatch = Stopwatch()

    func start() { stopwatch = Stopwatch() }

    func forward(_ step: Executor.Step, fused: String?) {
        let (wall, processor) = stopwatch.lap()
        forward.append(.init(node: step.node.name, opType: fused ?? step.node.opType, milliseconds: wall, processorMilliseconds: processor))
    }

    func backward(_ node: Node, label: String) {
        let (wall, processor) = stopwatch.lap()
        backward.append(.init(node: node.name, opType: label, milliseconds: wall, processorMilliseconds: processor))
    }

    func backward(_ label: String) {
        let (wall, processor) = stopwatch.lap()
        backward.append(.init(node: "", opType: label, milliseconds: wall, processorMilliseconds: processor))
    }
}

/// Wall-clock and process processor time between laps, for profiles.
struct Stopwatch {
    private var wall = DispatchTime.now().uptimeNanoseconds
    private var processor = Stopwatch.processorNanoseconds()

    /// Milliseconds of wall-clock and processor time since the last lap (or the start).
    mutating func lap() -> (wall: Double, processor: Double) {
        let (now, used) = (DispatchTime.now().uptimeNanoseconds, Stopwatch.processorNanoseconds())
        defer { (wall, processor) = (now, used) }
        return (Double(now - wall) / 1e6, Double(used &- processor) / 1e6)
    }

    /// The processor time all threads of this process have used.
    static func processorNanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

/// What the forward pass keeps for one step's backward rule: a node's, or a fusion's whose rule
/// differentiates its whole chain.
struct BackwardRecord {
    /// The index of the step that ran (a fusion's producer).
    let index: Int
    /// The op whose rule runs, its input slots (a fusion's extra inputs after the producer's) and
    /// output slots (a fusion's writer's), and its label in profiles.
    let op: any Operator
    let inputSlots: [Int?]
    let outputSlots: [Int?]
    let label: String
    let inputs: [Tensor?]
    let inputShapes: [[Int]?]
    let inputTypes: [DType?]
    let outputs: [Tensor?]
    let outputShapes: [[Int]?]
    let outputTypes: [DType?]
    let constantInputs: [Bool]

    /// The record of step `index` of `steps`, run alone or as the producer of `fusion`, keeping
    /// what its rule reads when the inputs `wanted` marks need gradients.
    init(
        step index: Int, fusion: Fusion?, of steps: [Executor.Step], inputs: OpInputs, results: [Tensor?],
        wanted: (Int?) -> Bool
    ) {
        let ran = steps[index]
        self.index = index
        op = fusion?.op ?? ran.op
        inputSlots = ran.inputs + (fusion?.extraInputs.map { Optional($0) } ?? [])
        outputSlots = fusion.map { steps[$0.writer].outputs } ?? ran.outputs
        label = fusion?.label ?? ran.node.opType
        let saved = (op as? DifferentiableOperator)?.savedForBackward(wanted: inputSlots.map(wanted)) ?? .nothing
        self.inputs = inputs.tensors.enumerated().map { saved.inputs.contains($0.offset) ? $0.element : nil }
        inputShapes = inputs.tensors.map { $0?.shape }
        inputTypes = inputs.tensors.map { $0?.dtype }
        constantInputs = inputs.tensors.indices.map(inputs.isConstant)
        outputs = results.enumerated().map { saved.outputs.contains($0.offset) ? $0.element : nil }
        outputShapes = results.map { $0?.shape }
        outputTypes = results.map { $0?.dtype }
    }

    func step(outputGradients: [Tensor?], wanted: [Bool]) -> BackwardStep {
        BackwardStep(
            inputs: inputs, inputShapes: inputShapes, inputTypes: inputTypes, outputs: outputs, outputShapes: outputShapes,
            outputTypes: outputTypes, outputGradients: outputGradients, wanted: wanted, constantInputs: constantInputs)
    }
}

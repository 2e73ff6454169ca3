import Dispatch
import ONNXModel
import TensorCore

/// Runs a model's graph forward: validated and built once, then run any number of times.
///
/// Construction checks the whole graph (undefined inputs, duplicate outputs, cycles, and every
/// unsupported operator at once), parses each node's attributes, and evaluates the nodes whose
/// inputs are all constant (see ``foldedTensors``). ``run(_:fetch:)`` evaluates
/// only the nodes the requested tensors depend on, in topological order, and releases each
/// intermediate as soon as no later node needs it, so any tensor can be tapped by name.
public final class Executor: Sendable {
    /// The model this executor runs.
    public let model: Model
    /// The nodes in execution order, with their built operators.
    let steps: [Step]
    /// The slot of every named value: graph inputs, initializers, node outputs.
    let slots: [String: Int]
    /// Values known before any input is fed (initializers and folded node outputs), by slot.
    let constants: [Int: Tensor]
    /// The node outputs computed once at load because every input of their node was constant:
    /// `Constant` nodes, and (with constant folding) shape arithmetic, weight transposes and the
    /// like. They can be fetched by name like any tensor; they have no gradient.
    public let foldedTensors: Set<String>
    /// For each slot, the index into `steps` of the node producing it (`nil` for inputs and constants).
    let producer: [Int?]
    /// Producer-plus-activation pairs that may run as one step, keyed by the producer's index.
    let fusions: [Int: Fusion]
    /// The passes run so far.
    public let passes = PassCounter()
    /// Run plans by the slots a run keeps (runs without steps held apart from their fusions).
    private let plans = RunPlans()

    struct Step: Sendable {
        let node: Node
        let op: any Operator
        let inputs: [Int?]
        let outputs: [Int?]
        /// Which inputs are constants (``OpInputs/isConstant(_:)``).
        let constantInputs: [Bool]
    }

    /// Validates `model`, builds an operator for every node with `registry`, and folds constants.
    ///
    /// Throws ``KernelSelectionError`` first when `SHORTCUT_DETECT_KERNELS` names a kernel level
    /// that does not exist or that this CPU cannot run: nothing runs on a level nobody asked for.
    ///
    /// - Parameter foldConstants: Evaluate nodes whose inputs are all constant once, now (see
    ///   ``foldedTensors``, and ``constantFoldingLimit`` for the size limit); `false` runs them on
    ///   every run, as written (`Constant` nodes are always read at load).
    public convenience init(model: Model, foldConstants: Bool = true) throws {
        try self.init(model: model, registry: .standard, foldConstants: foldConstants)
    }

    /// An executor whose nodes are built by `registry` (tests register ops of their own).
    package init(model: Model, registry: OpRegistry, foldConstants: Bool = true) throws {
        try Kernels.validateSelection()
        guard let opset = model.defaultOpset else { throw GraphError.missingOpset }
        let graph = model.graph
        var slots: [String: Int] = [:]
        var problems: [String] = []
        func define(_ name: String, by owner: String) {
            if slots[name] != nil {
                problems.append("tensor '\(name)' is defined more than once (again by \(owner))")
            } else {
                slots[name] = slots.count
            }
        }
        for input in graph.inputs { define(input.name, by: "a graph input") }
        for name in graph.initializers.keys.sorted() { define(name, by: "an initializer") }
        for node in graph.nodes { for output in node.outputs where !output.isEmpty { define(output, by: node.label) } }
        for node in graph.nodes {
            for input in node.inputs where !input.isEmpty && slots[input] == nil {
                problems.append("\(node.label) reads '\(input)', which no node, input or initializer defines")
            }
        }
        for output in graph.outputs where slots[output.name] == nil {
            problems.append("graph output '\(output.name)' is never computed")
        }
        guard problems.isEmpty else { throw GraphError.invalidGraph(problems) }

        let order = try Executor.topologicalOrder(graph.nodes, slots: slots)
        let missing = MissingOperator.find(in: order.map { graph.nodes[$0] }, registry: registry)
        guard missing.isEmpty else { throw GraphError.unsupportedOperators(missing) }

        var initializers: [Int: Tensor] = [:]
        for (name, tensor) in graph.initializers { if let slot = slots[name] { initializers[slot] = tensor } }
        var fixedInputs: [Int: (dtype: DType, shape: [Int])] = [:]
        for input in graph.inputs {
            guard let slot = slots[input.name], let dtype = input.elementType, let dims = input.shape else { continue }
            let extents = dims.compactMap(\.fixedExtent)
            if extents.count == dims.count { fixedInputs[slot] = (dtype, extents) }
        }
        var folder = ConstantFolder(constants: initializers, fixedInputs: fixedInputs, enabled: foldConstants)
        var folded = Set<String>()
        var steps: [Step] = []
        var producer = [Int?](repeating: nil, count: slots.count)
        for index in order {
            let node = graph.nodes[index]
            let context = OpContext(node: node, opset: opset)
            guard let builder = registry.builder(for: node) else { continue }
            let op: any Operator
            do { op = try builder(context) } catch let error as ONNXError {
                throw error
            } catch {
                throw GraphError.nodeFailed(node: node.label, reason: "\(error)")
            }
            let outputs = node.outputs.map { $0.isEmpty ? nil : slots[$0] }
            let inputs = node.inputs.map { $0.isEmpty ? nil : slots[$0] }
            if try folder.fold(node, op: op, inputs: inputs, outputs: outputs) {
                folded.formUnion(node.outputs.filter { !$0.isEmpty })
                continue
            }
            for case let slot? in outputs { producer[slot] = steps.count }
            steps.append(
                Step(
                    node: node, op: op, inputs: inputs, outputs: outputs,
                    constantInputs: inputs.map { $0.map { folder.constants[$0] != nil } ?? false }))
        }
        let constants = folder.constants

        self.model = model
        self.steps = steps
        self.slots = slots
        self.constants = constants
        self.foldedTensors = folded
        self.producer = producer
        self.fusions = Fusion.plan(steps, graphOutputs: Set(graph.outputs.compactMap { slots[$0.name] }), constants: constants)
    }

    /// Kahn's algorithm over the nodes; a leftover node sits on a cycle.
    private static func topologicalOrder(_ nodes: [Node], slots: [String: Int]) throws -> [Int] {
        var producerOf: [String: Int] = [:]
        for (index, node) in nodes.enumerated() { for output in node.outputs where !output.isEmpty { producerOf[output] = index } }
        var pending = [Int](repeating: 0, count: nodes.count)
        var consumers = [[Int]](repeating: [], count: nodes.count)
        for (index, node) in nodes.enumerated() {
            for input in Set(node.inputs) where !input.isEmpty {
                if let source = producerOf[input] {
                    pending[index] += 1
                    consumers[source].append(index)
                }
            }
        }
        var ready = (0..<nodes.count).filter { pending[$0] == 0 }.reversed() as [Int]
        var order: [Int] = []
        while let index = ready.popLast() {
            order.append(index)
            for consumer in consumers[index].reversed() {
                pending[consumer] -= 1
                if pending[consumer] == 0 { ready.append(consumer) }
            }
        }
        guard order.count == nodes.count else {
            let cyclic = (0..<nodes.count).filter { pending[$0] > 0 }.map { nodes[$0].label }
            throw GraphError.invalidGraph(["the graph has a cycle through: " + cyclic.joined(separator: ", ")])
        }
        return order
    }

    /// The graph's inputs (initializers excluded).
    public var inputs: [ValueInfo] { model.graph.inputs }
    /// The graph's outputs.
    public var outputs: [ValueInfo] { model.graph.outputs }
    /// How the first input orders an image batch, read from its declared shape (see ``ImageLayout/declared(by:)``).
    public var imageLayout: ImageLayout { ImageLayout.declared(by: inputs.first?.shape ?? []) }

    /// The height and width of the first input when it is a 4-D image batch with fixed height and width.
    public var fixedImageSize: (height: Int, width: Int)? {
        let layout = imageLayout
        guard let dims = inputs.first?.shape, dims.count == 4, let height = dims[layout.heightAxis].fixedExtent,
            let width = dims[layout.widthAxis].fixedExtent
        else { return nil }
        return (height, width)
    }

    /// The image size to feed the first input: `requested` where the model leaves height and
    /// width free, else the size it fixes. Throws when `requested` contradicts a fixed axis, or
    /// when an axis is free and nothing was requested.
    ///
    /// - Parameter layout: How the input orders its axes; ``imageLayout`` when `nil`.
    public func imageSize(requested: (height: Int, width: Int)?, layout: ImageLayout? = nil) throws -> (height: Int, width: Int) {
        guard let input = inputs.first else { throw GraphError.inputMismatch("the model has no inputs") }
        let layout = layout ?? imageLayout
        let declared = "[" + (input.shape ?? []).map(\.description).joined(separator: ", ") + "]"
        let dims = input.shape ?? []
        guard dims.isEmpty || dims.count == 4 else {
            throw GraphError.wrongInput(name: input.name, reason: "expects \(declared), not a 4-D image batch")
        }
        var size: [Int] = []
        for (axis, name) in [(layout.heightAxis, "height"), (layout.widthAxis, "width")] {
            let fixed = dims.isEmpty ? nil : dims[axis].fixedExtent
            let wanted = requested.map { name == "height" ? $0.height : $0.width }
            if let wanted, wanted < 1 { throw GraphError.wrongInput(name: input.name, reason: "an image \(name) of \(wanted) is empty") }
            if let fixed, let wanted, wanted != fixed {
                throw GraphError.wrongInput(
                    name: input.name,
                    reason: "expects \(declared): its \(name) is fixed at \(fixed), so the requested \(wanted) does not fit")
            }
            guard let extent = wanted ?? fixed else {
                throw GraphError.wrongInput(
                    name: input.name, reason: "expects \(declared): its \(name) is free, so an image size must be given")
            }
            size.append(extent)
        }
        return (size[0], size[1])
    }

    /// Every tensor name that ``run(_:fetch:)`` can return.
    public var tensorNames: [String] { slots.sorted { $0.value < $1.value }.map(\.key) }

    /// Runs the graph on `feeds` (keyed by input name) and returns the `fetch` tensors by name.
    ///
    /// - Parameters:
    ///   - feeds: One tensor per graph input.
    ///   - fetch: Names of the tensors to return: graph outputs or any intermediate. Defaults to
    ///     the graph outputs.
    public func run(_ feeds: [String: Tensor], fetch: [String]? = nil) throws -> [String: Tensor] {
        let wanted = fetch ?? outputs.map(\.name)
        let wantedSlots = try wanted.map(slot)
        let values = try evaluate(feeds, keeping: wantedSlots)
        var result: [String: Tensor] = [:]
        for (name, slot) in zip(wanted, wantedSlots) { result[name] = values[slot] }
        return result
    }

    /// The time one step of a run took.
    package struct StepTiming: Sendable {
        /// The node's name (the producer's, for a fused pair).
        package let node: String
        /// The op type, `Conv+Relu` style for a fused pair.
        package let opType: String
        /// Wall-clock time.
        package let milliseconds: Double
        /// Processor time of every thread of the process (on a shared machine the steadier
        /// measure of a step's work: waiting for a core does not count).
        package let processorMilliseconds: Double
    }

    /// Runs the graph outputs once, as ``run(_:fetch:)`` does (fusions included), and times each step.
    package func profile(_ feeds: [String: Tensor]) throws -> [StepTiming] {
        var timings: [StepTiming] = []
        var stopwatch = Stopwatch()
        _ = try evaluate(feeds, keeping: try outputs.map { try slot($0.name) }, finished: { index, fused in
            let step = self.steps[index]
            let (wall, processor) = stopwatch.lap()
            timings.append(
                StepTiming(node: step.node.name, opType: fused ?? step.node.opType, milliseconds: wall, processorMilliseconds: processor))
        })
        return timings
    }

    /// The slot of a tensor name, or an error with the closest names.
    func slot(_ name: String) throws -> Int {
        guard let slot = slots[name] else {
            throw GraphError.unknownTensor(name: name, suggestions: Executor.closest(to: name, in: Array(slots.keys)))
        }
        return slot
    }

    /// Runs the steps the `kept` slots depend on and returns every slot's value; only kept
    /// slots and constants survive to the end, everything else is freed after its last reader.
    /// `observe` sees each step's inputs and outputs as it runs, with the fusion it ran in (reverse
    /// mode keeps what it needs); steps `unfused` returns `true` for are never fused. `finished`
    /// hears of every step run, with the fusion's label (`Conv+Relu`) when it ran fused.
    func evaluate(
        _ feeds: [String: Tensor], keeping kept: [Int], unfused: ((Int) -> Bool)? = nil,
        finished: ((Int, String?) -> Void)? = nil, observe: ((Int, Fusion?, OpInputs, [Tensor?]) -> Void)? = nil
    ) throws -> [Tensor?] {
        passes.countForward()
        var values = [Tensor?](repeating: nil, count: slots.count)
        for (slot, tensor) in constants { values[slot] = tensor }
        try bind(feeds, into: &values)

        // Without `unfused`, the plan depends on the kept slots alone: made once per set of them.
        let runPlan = unfused.map { plan(keeping: kept, unfused: $0) }
            ?? plans.value(for: kept) { plan(keeping: kept, unfused: { _ in false }) }
        let (needed, running, absorbed, lastUse) = (runPlan.needed, runPlan.running, runPlan.absorbed, runPlan.lastUse)

        var meter = WorkBudget.limit.map { WorkBudget.Meter(limit: $0) }
        for position in needed where absorbed[position] == nil {
            let fusion = running[position]?.fusion
            let index = running[position]?.producer ?? position
            let step = steps[index]
            var tensors = step.inputs.map { $0.flatMap { values[$0] } }
            var constant = step.constantInputs
            var op = step.op
            var writer = step
            if let fusion {
                op = fusion.op
                writer = steps[fusion.writer]
                tensors += fusion.extraInputs.map { values[$0] }
                constant += fusion.extraInputs.map { constants[$0] != nil }
            }
            let inputs = OpInputs(tensors, constant: constant)
            if meter != nil {
                // The chain's first op does the work (a Relu or Add after it is linear).
                let own = fusion == nil ? inputs : OpInputs(Array(tensors.prefix(step.inputs.count)), constant: step.constantInputs)
                let cost: Int?
                do { cost = try step.op.multiplyAdds(own) } catch {
                    throw GraphError.nodeFailed(node: step.node.label, reason: "\(error)")
                }
                if let cost { try meter?.charge(cost, node: step.node.label) }
            }
            let results: [Tensor?]
            do { results = try op.forward(inputs) } catch let error as GraphError {
                throw error
            } catch {
                throw GraphError.nodeFailed(node: step.node.label, reason: "\(error)")
            }
            for (output, slot) in writer.outputs.enumerated() {
                guard let slot else { continue }
                guard output < results.count, let result = results[output] else {
                    if lastUse[slot] >= 0 {
                        throw GraphError.nodeFailed(node: writer.node.label, reason: "output \(output) ('\(writer.node.outputs[output])') was not produced")
                    }
                    continue
                }
                values[slot] = result
            }
            observe?(index, fusion, inputs, results)
            for ran in [index] + (fusion?.tails ?? []) {
                for case let slot? in steps[ran].inputs where lastUse[slot] == position { values[slot] = nil }
            }
            finished?(index, fusion?.label)
        }
        for slot in kept where values[slot] == nil {
            throw GraphError.nodeFailed(node: "tensor '\(tensorName(slot))'", reason: "was not computed")
        }
        return values
    }

    /// The steps one run takes to compute the `kept` slots, the fusions it runs and where, and
    /// each slot's last reader.
    private func plan(keeping kept: [Int], unfused: (Int) -> Bool) -> RunPlan {
        let needed = neededSteps(for: kept)
        let neededSet = Set(needed)
        let keptSet = Set(kept)
        // The fusions that run, keyed by their writer's step, where each runs: every input of the
        // chain (a residual connection's other term, computed after the producer) is ready there,
        // and only later steps read the writer's outputs. The other steps of a chain are absorbed.
        var running: [Int: (producer: Int, fusion: Fusion)] = [:]
        var absorbed: [Int: Int] = [:]
        for index in needed where absorbed[index] == nil && running[index] == nil {
            guard let candidate = fusions[index], candidate.tails.allSatisfy(neededSet.contains),
                !candidate.tails.contains(where: { absorbed[$0] != nil || running[$0] != nil || unfused($0) }), !unfused(index),
                !candidate.intermediates.contains(where: keptSet.contains)
            else { continue }
            running[candidate.writer] = (index, candidate)
            for member in [index] + candidate.tails.dropLast() { absorbed[member] = candidate.writer }
        }
        // The last step that reads each slot (a fused step reads where its fusion runs); values
        // die after it unless kept or constant.
        var lastUse = [Int](repeating: -1, count: slots.count)
        for index in needed {
            for case let slot? in steps[index].inputs { lastUse[slot] = max(lastUse[slot], absorbed[index] ?? index) }
        }
        for slot in kept { lastUse[slot] = Int.max }
        for slot in constants.keys { lastUse[slot] = Int.max }
        return RunPlan(needed: needed, running: running, absorbed: absorbed, lastUse: lastUse)
    }

    /// The name of a slot.
    func tensorName(_ slot: Int) -> String { slots.first { $0.value == slot }?.key ?? "#\(slot)" }

    /// Checks feeds against the declared inputs and stores them in their slots.
    private func bind(_ feeds: [String: Tensor], into values: inout [Tensor?]) throws {
        let declared = Set(inputs.map(\.name))
        if let extra = feeds.keys.sorted().first(where: { !declared.contains($0) }) {
            throw GraphError.inputMismatch(
                "'\(extra)' is not an input of the model; its inputs are: \(inputs.map(\.name).joined(separator: ", "))")
        }
        for input in inputs {
            guard let tensor = feeds[input.name] else {
                throw GraphError.inputMismatch("no tensor was given for the model input '\(input.name)'")
            }
            if let type = input.elementType, type != tensor.dtype {
                throw GraphError.wrongInput(name: input.name, reason: "expects \(type) elements, got \(tensor.dtype)")
            }
            if let shape = input.shape {
                let expected = "[" + shape.map(\.description).joined(separator: ", ") + "]"
                guard shape.count == tensor.rank else {
                    throw GraphError.wrongInput(
                        name: input.name, reason: "expects rank \(shape.count) \(expected), got shape \(tensor.shape)")
                }
                // Only fixed axes are checked: named, blank, `-1` and `0` axes take any extent.
                for (axis, dim) in shape.enumerated() {
                    if let size = dim.fixedExtent, size != tensor.shape[axis] {
                        throw GraphError.wrongInput(
                            name: input.name,
                            reason: "expects shape \(expected), got \(tensor.shape) (axis \(axis) must be \(size))")
                    }
                }
            }
            if let slot = slots[input.name] { values[slot] = tensor }
        }
    }

    /// The steps that the wanted slots depend on, in execution order.
    func neededSteps(for wanted: [Int]) -> [Int] {
        var needed = Set<Int>()
        var stack = wanted.compactMap { producer[$0] }
        while let index = stack.popLast() {
            guard needed.insert(index).inserted else { continue }
            for case let slot? in steps[index].inputs { if let source = producer[slot] { stack.append(source) } }
        }
        return needed.sorted()
    }

    /// Up to five names most similar to `name`, for "did you mean" hints.
    package static func closest(to name: String, in candidates: [String]) -> [String] {
        let target = Array(name.lowercased())
        let scored = candidates.map { candidate -> (String, Int) in
            let lowered = candidate.lowercased()
            if lowered.contains(name.lowercased()) { return (candidate, 0) }
            return (candidate, editDistance(target, Array(lowered)))
        }
        let limit = max(3, target.count / 2)
        return scored.filter { $0.1 <= limit }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.prefix(5).map(\.0)
    }

    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + [Int](repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

extension ImageLayout {
    /// The layout a declared input shape implies: channels-last when the last axis is fixed at 3
    /// or 1 and the second is not (Keras's `[N, H, W, 3]`), channels-first otherwise.
    public static func declared(by dims: [Dimension]) -> ImageLayout {
        guard dims.count == 4, let last = dims[3].fixedExtent, last == 3 || last == 1 else { return .nchw }
        if let second = dims[1].fixedExtent, second == 3 || second == 1 { return .nchw }
        return .nhwc
    }
}

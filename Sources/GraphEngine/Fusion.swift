import ONNXModel
import TensorCore

// Fusing a node with the nodes that alone read its output, so the chain runs in one pass while
// the producer's result is still in cache and the intermediate tensors are never stored.

/// An activation a producing op can apply to its own output on the way out.
package enum Activation: Sendable, Equatable {
    case relu
    /// `LeakyRelu`: `x` where positive, else `αx`.
    case leakyRelu(alpha: Float)
    /// `HardSigmoid`: `max(0, min(1, αx + β))`.
    case hardSigmoid(alpha: Float, beta: Float)
    /// `HardSwish`: `x · HardSigmoid(x)` with α = 1/6, β = 1/2.
    case hardSwish
}

/// An op that can apply a following ``Activation`` to its output in the same pass.
protocol ActivationFusing: Operator {
    /// This op with `activation` applied to its (single) output; only asked when ``canFuse(_:)`` holds.
    func fused(with activation: Activation) -> any Operator
    /// Whether ``fused(with:)`` builds `activation` in (a wrapper may hold an op that cannot).
    func canFuse(_ activation: Activation) -> Bool
}

extension ActivationFusing {
    /// ReLU only, unless the op says otherwise.
    func canFuse(_ activation: Activation) -> Bool { activation == .relu }
}

/// An activation op whose work a producer can take over (see ``Activation``).
protocol FusibleActivation: Operator {
    /// What the op computes, `nil` when a wrapper holds an op that is none.
    var fusibleActivation: Activation? { get }
}

/// A producer and the chain of nodes after it, each the only reader of the one before, run as one
/// step, at the place of the chain's last node (where every input of the chain is ready: a
/// residual connection's other term may be computed after the producer).
///
/// The executor takes a fusion only when nothing else needs an intermediate: none is fetched and
/// no reverse pass records any of the nodes, unless the fused op has a backward rule of its own
/// (``differentiable``). Otherwise the nodes run as written. A fused op gives the chain's result
/// bit for bit (the same operations in the same order), or runs the chain's own ops where its
/// fast path does not apply.
struct Fusion: Sendable {
    /// The fused op: it reads the producer's inputs, then ``extraInputs``.
    let op: any Operator
    /// The absorbed nodes (indices into the executor's steps), in order.
    let tails: [Int]
    /// The absorbed node whose outputs the fused op writes (the last of ``tails``).
    let writer: Int
    /// The slots between the nodes, which a fused run never fills.
    let intermediates: [Int]
    /// Slots of the absorbed nodes that the fused op reads too (a bias).
    let extraInputs: [Int]
    /// `Conv+Relu` style, for profiles.
    let label: String
    /// Whether ``op`` is a ``DifferentiableOperator`` whose rule differentiates the whole chain, so
    /// a reverse pass may run the chain fused and differentiate it as one step. (A producer with
    /// an activation in its epilogue keeps its own rule, which knows nothing of the activation.)
    let differentiable: Bool

    init(
        op: any Operator, tails: [Int], intermediates: [Int], extraInputs: [Int] = [], label: String,
        differentiable: Bool = false
    ) {
        (self.op, self.tails, self.intermediates, self.extraInputs, self.label) = (op, tails, intermediates, extraInputs, label)
        self.differentiable = differentiable && op is DifferentiableOperator
        writer = tails.last ?? -1
    }

    /// Fusions keyed by the producer's step index. `constants` are the executor's constants by slot.
    static func plan(_ steps: [Executor.Step], graphOutputs: Set<Int>, constants: [Int: Tensor]) -> [Int: Fusion] {
        let graph = FusionGraph(steps: steps, graphOutputs: graphOutputs, constants: constants)
        var fusions: [Int: Fusion] = [:]
        for index in steps.indices {
            if let fusion = graph.activation(after: index) ?? graph.residualConvolution(at: index) ?? graph.biasedProduct(at: index)
                ?? graph.gelu(at: index)
            {
                fusions[index] = fusion
            }
        }
        return fusions
    }
}

/// The steps with their readers and constant values, for matching fusion patterns.
private struct FusionGraph {
    let steps: [Executor.Step]
    let graphOutputs: Set<Int>
    let constants: [Int: Tensor]
    var readers: [Int: [Int]] = [:]

    init(steps: [Executor.Step], graphOutputs: Set<Int>, constants: [Int: Tensor]) {
        (self.steps, self.graphOutputs, self.constants) = (steps, graphOutputs, constants)
        for (index, step) in steps.enumerated() {
            for case let slot? in Set(step.inputs) { readers[slot, default: []].append(index) }
        }
    }

    /// The only reader of step `index`'s single output, if it is a standard-domain node (of type
    /// `opType`, when given).
    func onlyReader(of index: Int, _ opType: String? = nil) -> (index: Int, slot: Int)? {
        let step = steps[index]
        guard step.outputs.count == 1, let slot = step.outputs[0], !graphOutputs.contains(slot),
            let only = readers[slot], only.count == 1, steps[only[0]].node.domain.isEmpty,
            opType.map({ steps[only[0]].node.opType == $0 }) ?? true
        else { return nil }
        return (only[0], slot)
    }

    /// The activation step `index` computes, if a producer could take it over.
    func activation(of index: Int) -> Activation? {
        steps[index].node.opType == "Relu" ? .relu : (steps[index].op as? FusibleActivation)?.fusibleActivation
    }

    /// The value of a constant: an initializer, a `Constant` node's output or a folded one.
    func constant(_ slot: Int?) -> Tensor? { slot.flatMap { constants[$0] } }

    /// A one-element float32 constant's value.
    func scalar(_ slot: Int?) -> Float? {
        guard let tensor = constant(slot), tensor.count == 1, tensor.dtype == .float32 else { return nil }
        return try? tensor.scalars(as: Float.self).first
    }

    /// For a two-input node reading `slot`: its other input, and whether `slot` came first.
    func other(than slot: Int, in index: Int) -> (slot: Int?, first: Bool)? {
        let inputs = steps[index].inputs
        guard inputs.count == 2 else { return nil }
        if inputs[0] == slot { return (inputs[1], true) }
        if inputs[1] == slot { return (inputs[0], false) }
        return nil
    }

    /// `Conv`/`Add` and the activation (`Relu`; `LeakyRelu`, `HardSigmoid`, `HardSwish` after
    /// `Conv`) that alone reads it.
    func activation(after index: Int) -> Fusion? {
        guard let producer = steps[index].op as? ActivationFusing, let (tail, slot) = onlyReader(of: index),
            steps[tail].inputs == [slot], let activation = activation(of: tail), producer.canFuse(activation)
        else { return nil }
        let fused = producer.fused(with: activation)
        // Rounding to float16 commutes with ReLU but not with the others: those run apart on float16.
        let op = activation == .relu ? fused : ActivatedProducer(fused: fused, producer: steps[index].op, activation: steps[tail].op)
        return Fusion(op: op, tails: [tail], intermediates: [slot], label: steps[index].node.opType + "+" + steps[tail].node.opType)
    }

    /// `Conv`, the `Add` of another tensor that alone reads it (a residual connection), and the
    /// `Relu` that alone reads the sum, when there is one.
    func residualConvolution(at index: Int) -> Fusion? {
        let op = steps[index].op
        guard steps[index].node.domain.isEmpty, let conv = ((op as? HalfPrecision)?.inner ?? op) as? Conv, conv.activation == nil,
            let (add, slot) = onlyReader(of: index, "Add"), let (otherSlot, convFirst) = other(than: slot, in: add),
            let otherSlot, otherSlot != slot
        else { return nil }
        let relu = onlyReader(of: add, "Relu").flatMap { relu in steps[relu.index].inputs == [relu.slot] ? relu : nil }
        // Where the sum runs apart, the Add takes the ReLU in its own pass, as it would unfused.
        let sum = steps[add].op
        let activatedSum = relu == nil ? sum : (sum as? ActivationFusing).flatMap { $0.canFuse(.relu) ? $0.fused(with: .relu) : nil }
        let fused = ResidualConv(
            conv: conv, asWritten: op, add: activatedSum ?? sum, relu: activatedSum == nil ? relu.map { steps[$0.index].op } : nil,
            convInputs: steps[index].inputs.count, convFirst: convFirst, activated: relu != nil)
        return Fusion(
            op: fused, tails: [add] + (relu.map { [$0.index] } ?? []), intermediates: [slot] + (relu.map { [$0.slot] } ?? []),
            extraInputs: [otherSlot], label: relu == nil ? "Conv+Add" : "Conv+Add+Relu")
    }

    /// `MatMul` and the `Add` of a 1-D constant (a Linear layer's bias) that alone reads it.
    func biasedProduct(at index: Int) -> Fusion? {
        guard steps[index].node.domain.isEmpty, steps[index].node.opType == "MatMul",
            let (add, slot) = onlyReader(of: index, "Add"), let (biasSlot, productFirst) = other(than: slot, in: add),
            let bias = constant(biasSlot), let biasSlot, bias.rank == 1
        else { return nil }
        let op = BiasedMatMul(product: steps[index].op, add: steps[add].op, productFirst: productFirst)
        return Fusion(
            op: op, tails: [add], intermediates: [slot], extraInputs: [biasSlot], label: "MatMul+Add", differentiable: true)
    }

    /// The exporters' exact GELU, `((x · (erf(x / c) + 1)) · 0.5)`, five nodes from `Div` on.
    func gelu(at index: Int) -> Fusion? {
        let div = steps[index]
        guard div.node.domain.isEmpty, div.node.opType == "Div", div.inputs.count == 2, let x = div.inputs[0],
            let divisor = scalar(div.inputs[1]),
            let (erf, divided) = onlyReader(of: index, "Erf"),
            let (add, erfed) = onlyReader(of: erf, "Add"), let (oneSlot, erfFirst) = other(than: erfed, in: add),
            let one = scalar(oneSlot), let oneConstant = constant(oneSlot),
            let (mul, added) = onlyReader(of: add, "Mul"), let (xSlot, addedFirst) = other(than: added, in: mul), xSlot == x,
            let (half, multiplied) = onlyReader(of: mul, "Mul"),
            let (halfSlot, productFirst) = other(than: multiplied, in: half),
            let halfValue = scalar(halfSlot), let halfConstant = constant(halfSlot)
        else { return nil }
        let op = GELUChain(
            ops: [div.op, steps[erf].op, steps[add].op, steps[mul].op, steps[half].op], divisor: divisor, one: one,
            half: halfValue, constants: [oneConstant, halfConstant], erfFirst: erfFirst, addedFirst: addedFirst,
            productFirst: productFirst)
        return Fusion(
            op: op, tails: [erf, add, mul, half], intermediates: [divided, erfed, added, multiplied], label: "Gelu",
            differentiable: true)
    }
}

/// A producer with an activation other than ReLU in its epilogue, or, on float16 inputs (which
/// the producer computes in float32 and rounds once, while the activation would start from the
/// rounded values), the two ops as written.
struct ActivatedProducer: Operator {
    let fused: any Operator
    let producer: any Operator
    let activation: any Operator

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        guard inputs.tensors.contains(where: { $0?.dtype == .float16 }) else { return try fused.forward(inputs) }
        return try activation.forward(OpInputs([try producer.forward(inputs).first ?? nil]))
    }
}

/// `Conv`, then `Add` of a tensor of the convolution's shape (a residual connection), then
/// `Relu` when there is one: the sum and ReLU in the product's stores where the packed kernels
/// run (the same bits), else the ops as written. Inputs: the convolution's, then the other term.
struct ResidualConv: Operator {
    let conv: Conv
    /// The `Conv` node's op as registered (it takes float16 too), for running the ops as written.
    let asWritten: any Operator
    /// The `Add`, with the ReLU fused in when there is one and it can take it.
    let add: any Operator
    /// The `Relu` when ``add`` could not take it.
    let relu: (any Operator)?
    /// How many inputs the `Conv` node has (the other term follows them).
    let convInputs: Int
    /// Whether the convolution was the `Add`'s first input.
    let convFirst: Bool
    /// Whether a `Relu` follows the sum.
    let activated: Bool

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let operands = OpInputs(
            Array(inputs.tensors.prefix(convInputs)), constant: (0..<convInputs).map { inputs.isConstant($0) })
        let other = try inputs.required(convInputs)
        var convolution = conv
        convolution.activation = activated ? .relu : nil
        if let fused = try convolution.withResidual(operands, residual: other) { return [fused] }
        let y = try asWritten.forward(operands)[0]
        let sum = try add.forward(OpInputs(convFirst ? [y, other] : [other, y]))
        return try relu?.forward(OpInputs(sum)) ?? sum
    }
}

/// `MatMul` then `Add` of a bias: the bias added in the product's stores where the kernels run,
/// else the two ops as written. Inputs: `A`, `B`, the bias.
struct BiasedMatMul: Operator {
    let product: any Operator
    let add: any Operator
    /// Whether the product was the `Add`'s first input.
    let productFirst: Bool

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let bias = try inputs.required(2)
        let operands = OpInputs(Array(inputs.tensors.prefix(2)), constant: [inputs.isConstant(0), inputs.isConstant(1)])
        if let fused = try MatMul.withColumnBias(operands, bias: bias, through: product) { return [fused] }
        let y = try product.forward(operands)[0]
        return try add.forward(OpInputs(productFirst ? [y, bias] : [bias, y]))
    }
}

/// The five-node GELU as one pass where the vector kernels run (the same operations in the same
/// order, so the same bits), else its five ops as written. Input: `x` and the divisor.
struct GELUChain: Operator {
    let ops: [any Operator]
    let divisor, one, half: Float
    /// The graph's tensors for `one` and `half`, to replay the chain.
    let constants: [Tensor]
    /// Operand orders of the `Add`, the first `Mul` and the last `Mul`, to replay the chain.
    let erfFirst, addedFirst, productFirst: Bool

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        // One-element constants of higher rank than `x` would broadcast it to more axes: the ops do that.
        let sameShape = ([inputs[1]] + constants).allSatisfy { ($0?.rank ?? 0) <= x.rank }
        if x.dtype == .float32, let vector = Kernels.current.vector, ops.count == 5, sameShape {
            return [
                try x.withUnsafeBuffer(as: Float.self) { xs in
                    try Tensor.build(Float.self, shape: x.shape, writesAll: true) { out in
                        guard let from = xs.baseAddress, let to = out.baseAddress else { return }
                        vector.geluChain(from, into: to, count: xs.count, divisor: divisor, one: one, half: half)
                    }
                }
            ]
        }
        guard ops.count == 5, constants.count == 2 else { throw OpError("the GELU chain needs its five ops") }
        func pair(_ variable: Tensor?, _ constant: Tensor, _ variableFirst: Bool) -> OpInputs {
            OpInputs(variableFirst ? [variable, constant] : [constant, variable])
        }
        let divided = try ops[0].forward(inputs)[0]
        let erfed = try ops[1].forward(OpInputs([divided]))[0]
        let added = try ops[2].forward(pair(erfed, constants[0], erfFirst))[0]
        let multiplied = try ops[3].forward(OpInputs(addedFirst ? [added, x] : [x, added]))[0]
        return try ops[4].forward(pair(multiplied, constants[1], productFirst))
    }
}

// MARK: - Backward

extension BiasedMatMul: DifferentiableOperator {
    /// The product's operands as its own rule declares them; the bias's gradient is the output's.
    func savedForBackward(wanted: [Bool]) -> SavedValues {
        (product as? DifferentiableOperator)?.savedForBackward(wanted: Array(wanted.prefix(2))) ?? .nothing
    }

    /// The `Add` passes the gradient to both terms: the product's rule takes it (summed to the
    /// product's shape, where the bias broadcast it wider) and the bias gets it whole (the
    /// reverse pass sums it to the bias's shape).
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        guard let rule = product as? DifferentiableOperator else { throw OpError("MatMul has no gradient rule") }
        let g = try step.gradient()
        var result: [Tensor?] = [nil, nil, step.wants(2) ? g : nil]
        guard step.wants(0) || step.wants(1) else { return result }
        let shapes = try (0..<2).map(step.inputShape)
        let promotedA = shapes[0].count == 1 ? [1] + shapes[0] : shapes[0]
        let promotedB = shapes[1].count == 1 ? shapes[1] + [1] : shapes[1]
        var productShape = try Shape.broadcast(Array(promotedA.dropLast(2)), Array(promotedB.dropLast(2)))
        if shapes[0].count > 1 { productShape.append(promotedA[promotedA.count - 2]) }
        if shapes[1].count > 1 { productShape.append(promotedB[promotedB.count - 1]) }
        let productGradient = try g.summed(toShape: productShape)
        let operands = try rule.backward(
            BackwardStep(
                inputs: Array(step.inputs.prefix(2)), inputShapes: Array(step.inputShapes.prefix(2)),
                inputTypes: Array(step.inputTypes.prefix(2)), outputs: [nil], outputShapes: [productShape],
                outputTypes: [productGradient.dtype], outputGradients: [productGradient], wanted: Array(step.wanted.prefix(2)),
                constantInputs: Array(step.constantInputs.prefix(2))))
        for position in 0..<min(2, operands.count) { result[position] = operands[position] }
        return result
    }
}

extension GELUChain: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(0) }

    /// `y = (x · (erf(x / d) + one)) · half`, so `∂x = g · half · (erf(x / d) + one + x · 2/√π · e^(−(x/d)²) / d)`:
    /// with the exporters' constants (d = √2, one = 1, half = ½) GELU's derivative `Φ(x) + x φ(x)`,
    /// which the vector kernels compute in one pass. The five ops' own rules round after each
    /// step; this differs from them by float32 rounding (a few units in the last place).
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let x = try step.input(0)
        guard x.shape == g.shape, x.dtype == g.dtype else {
            throw OpError("the GELU chain's gradient \(g.dtype)\(g.shape) does not match its input \(x.dtype)\(x.shape)")
        }
        let standard = divisor == Float(2).squareRoot() && one == 1 && half == 0.5
        if x.dtype == .float32, standard, let vector = Kernels.current.vector {
            return [
                try x.withUnsafeBuffer(as: Float.self) { xs in
                    try g.withUnsafeBuffer(as: Float.self) { gs in
                        try Tensor.build(Float.self, shape: g.shape, writesAll: true) { out in
                            guard let x = xs.baseAddress, let g = gs.baseAddress, let o = out.baseAddress else { return }
                            vector.geluBackward(x, gradient: g, into: o, count: out.count)
                        }
                    }
                }, nil,
            ]
        }
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            let (d, one, half) = (T(divisor), T(self.one), T(self.half))
            let twoOverRootPi = T(1.12837916709551257390)
            return try x.withUnsafeBuffer(as: T.self) { xs in
                try g.withUnsafeBuffer(as: T.self) { gs in
                    try Tensor.build(T.self, shape: g.shape, writesAll: true) { out in
                        Parallel.forEach(out.count) { range in
                            for i in range {
                                let t = xs[i] / d
                                out[i] = gs[i] * half * (T.erf(t) + one + xs[i] * twoOverRootPi * T.exp(-t * t) / d)
                            }
                        }
                    }
                }
            }
        }
        // By name, so `run` is specialized (opened from the existential it stays generic).
        switch x.dtype {
        case .float32: return [try run(Float.self), nil]
        case .float64: return [try run(Double.self), nil]
        case .float16:
            // In float32, rounded once at the end, as the widened ops compute.
            let wide = BackwardStep(
                inputs: [try x.converted(to: .float32)], inputShapes: step.inputShapes, inputTypes: [.float32],
                outputs: [], outputShapes: step.outputShapes, outputTypes: [.float32],
                outputGradients: [try g.converted(to: .float32)], wanted: step.wanted)
            return [try backward(wide)[0]?.converted(to: .float16), nil]
        default: throw OpError("the GELU chain's gradient needs floating-point input, got \(x.dtype)")
        }
    }
}

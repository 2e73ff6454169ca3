import ONNXModel
import TensorCore

// The recurrent layers RNN, GRU and LSTM (opsets 7, 14 and 22; `layout` from 14): attributes,
// input checks and layouts here, the arithmetic and backpropagation through time in
// RecurrentPass.swift, the gate activations in RecurrentActivations.swift.

extension OpRegistry {
    mutating func registerRecurrent() {
        register("RNN") { try Recurrent(.rnn, $0) }
        register("GRU") { try Recurrent(.gru, $0) }
        register("LSTM") { try Recurrent(.lstm, $0) }
        widenForHalfPrecision(["RNN", "GRU", "LSTM"])
    }
}

/// `RNN`, `GRU` or `LSTM`: one recurrent layer run over a whole sequence, in one direction or both.
///
/// Inputs `X, W, R, B, sequence_lens, initial_h, initial_c, P` (the last two LSTM only) and
/// outputs `Y, Y_h, Y_c` (`Y_c` LSTM only), all but `X, W, R` optional. With `layout` 0,
/// `X` is `[seq_length, batch, input_size]`, `Y` is `[seq_length, num_directions, batch, hidden]`
/// and the states are `[num_directions, batch, hidden]`; `layout` 1 puts batch first in all three.
/// Gates are stacked in `W`, `R` and `B` in the spec's order: GRU `z, r, h`; LSTM `i, o, f, c`.
///
/// A batch entry whose `sequence_lens` value is `L` runs `L` steps (the reverse direction from
/// step `L − 1` down to 0); `Y` is zero beyond them. `Y_h` and `Y_c` are zero for an entry of
/// length 0, as onnxruntime makes them (the spec does not say).
struct Recurrent: Operator {
    enum Kind: String, Sendable {
        case rnn = "RNN", gru = "GRU", lstm = "LSTM"

        /// How many gate blocks `W`, `R` and `B` stack.
        var gates: Int {
            switch self {
            case .rnn: 1
            case .gru: 3
            case .lstm: 4
            }
        }

        /// The spec's default activations of one direction: RNN `f`; GRU `f, g`; LSTM `f, g, h`.
        var defaultActivations: [RecurrentActivation.Function] {
            switch self {
            case .rnn: [.tanh]
            case .gru: [.sigmoid, .tanh]
            case .lstm: [.sigmoid, .tanh, .tanh]
            }
        }
    }

    let kind: Kind
    /// The `hidden_size` attribute; taken from `R` when absent.
    let hiddenSize: Int?
    /// One entry per direction: whether it runs from the last step to the first.
    let reversed: [Bool]
    /// `layout` 1: batch is the first axis of `X`, `Y` and the states.
    let batchMajor: Bool
    /// Gate pre-activations are clipped to `[-clip, clip]` (the cell state is not, as in onnxruntime).
    let clip: Double?
    /// Per direction, the activations in the order the spec lists them for the kind.
    let activations: [[RecurrentActivation]]
    /// LSTM `input_forget`: the forget gate is `1 − i`.
    let inputForget: Bool
    /// GRU `linear_before_reset`: the reset gate multiplies `H·Rhᵀ + Rbh` instead of `H`.
    let linearBeforeReset: Bool
    /// A float32 initializer `W`, each direction packed as ``PackedGEMM``'s right operand.
    let packedWeights = WeightCache<[PackedMatrix]>()

    init(_ kind: Kind, _ context: OpContext) throws {
        self.kind = kind
        hiddenSize = try context.attribute("hidden_size", as: Int.self)
        if let hiddenSize, hiddenSize <= 0 { throw context.invalid("hidden_size", "must be positive, got \(hiddenSize)") }
        switch try context.attribute("direction", default: "forward") {
        case "forward": reversed = [false]
        case "reverse": reversed = [true]
        case "bidirectional": reversed = [false, true]
        case let other: throw context.invalid("direction", "must be forward, reverse or bidirectional, got '\(other)'")
        }
        let layout = try context.attribute("layout", default: 0)
        guard layout == 0 || layout == 1 else { throw context.invalid("layout", "must be 0 or 1, got \(layout)") }
        batchMajor = layout == 1
        let clip = try context.attribute("clip", as: Float.self)
        if let clip, !(clip > 0) { throw context.invalid("clip", "must be a positive threshold, got \(clip)") }
        self.clip = clip.map(Double.init)
        activations = try RecurrentActivation.parse(context, defaults: kind.defaultActivations, directions: reversed.count)
        let inputForget = try context.attribute("input_forget", default: 0)
        let linearBeforeReset = try context.attribute("linear_before_reset", default: 0)
        self.inputForget = kind == .lstm && inputForget != 0
        self.linearBeforeReset = kind == .gru && linearBeforeReset != 0
    }

    /// Every step of every sequence through the input and recurrent weights of every direction.
    func multiplyAdds(_ inputs: OpInputs) throws -> Int? {
        let (x, w, r) = (try inputs.required(0), try inputs.required(1), try inputs.required(2))
        guard let features = x.shape.last, features > 0 else { return nil }
        return WorkBudget.product(x.count / features, w.count + r.count)
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let prepared = try prepare(inputs.tensors)
        let outputs = try withGEMMType(prepared.x.dtype, kind.rawValue) { type in
            try forward(prepared, as: type, constantWeights: inputs.isConstant(1))
        }
        let y = batchMajor ? try outputs.y.transposed([2, 0, 1, 3]) : outputs.y
        let states = try [outputs.finalH, outputs.finalC].map { state in
            try state.map { batchMajor ? try $0.transposed([1, 0, 2]) : $0 }
        }
        return [y] + states
    }

    private func forward<T: GEMMScalar>(
        _ inputs: RecurrentInputs, as type: T.Type, constantWeights: Bool
    ) throws -> RecurrentOutputs {
        let pass = RecurrentPass<T>(op: self, inputs: inputs)
        return try pass.forward(packed: try packedProjection(inputs, constant: constantWeights))
    }

    /// `W` packed for the input projection when it is a float32 constant and the kernel table has
    /// products, else `nil` (BLAS multiplies). Below 16 rows (steps × batch) packing does not pay.
    private func packedProjection(_ inputs: RecurrentInputs, constant: Bool) throws -> [PackedMatrix]? {
        let shape = inputs.shape
        guard constant, inputs.w.dtype == .float32, let gemm = Kernels.current.gemm, shape.steps * shape.batch >= 16,
            shape.inputSize > 0, shape.gateWidth * shape.inputSize <= 1 << 24
        else { return nil }
        let w = inputs.w
        return try packedWeights.value(for: w) {
            try withExtendedLifetime(w) {
                let weights = w.unsafeElements(as: Float.self)
                let block = shape.gateWidth * shape.inputSize
                return try (0..<shape.directions).map { direction in
                    try gemm.pack(
                        right: weights.address(at: direction * block, count: block), depth: shape.inputSize,
                        columns: shape.gateWidth, depthStride: 1, columnStride: shape.inputSize)
                }
            }
        }
    }
}

/// The extents of one invocation of a recurrent op, checked against every input.
struct RecurrentShape {
    let steps, batch, inputSize, hidden, directions, gates: Int
    /// `gates × hidden`: the rows of `W` and `R` per direction.
    let gateWidth: Int
}

/// A recurrent op's inputs after their checks, in layout 0 (`X` `[steps, batch, input]`, states
/// `[directions, batch, hidden]`), whatever the node's `layout`.
struct RecurrentInputs {
    let shape: RecurrentShape
    let x, w, r: Tensor
    let bias: Tensor?
    /// Steps each batch entry runs; `steps` for all when `sequence_lens` is omitted.
    let lengths: [Int]
    let initialH, initialC, peepholes: Tensor?
}

extension Recurrent {
    static let inputNames = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]

    /// Checks the inputs' types and shapes against each other and the attributes, naming the
    /// input and dimension at fault, and brings them to layout 0.
    func prepare(_ tensors: [Tensor?]) throws -> RecurrentInputs {
        func input(_ index: Int) -> Tensor? {
            guard index < tensors.count, let tensor = tensors[index] else { return nil }
            return kind != .lstm && index >= 6 ? nil : tensor
        }
        guard let x0 = input(0), let w = input(1), let r = input(2) else {
            throw OpError("\(kind.rawValue) needs inputs X, W and R")
        }
        guard x0.dtype.isFloatingPoint else { throw OpError("input X must be floating-point, got \(x0.dtype)") }
        for index in [1, 2, 3, 5, 6, 7] {
            if let tensor = input(index), tensor.dtype != x0.dtype {
                throw OpError("input \(Self.inputNames[index]) is \(tensor.dtype) but X is \(x0.dtype); they must have one type")
            }
        }
        guard x0.rank == 3 else {
            throw OpError("input X must have rank 3 (\(batchMajor ? "[batch, seq_length, input_size]" : "[seq_length, batch, input_size]")), got shape \(x0.shape)")
        }
        let x = batchMajor ? try x0.transposed([1, 0, 2]) : x0
        let (steps, batch, inputSize) = (x.shape[0], x.shape[1], x.shape[2])
        let directions = reversed.count
        let gates = kind.gates
        guard r.rank == 3 else { throw OpError("input R must have rank 3 ([num_directions, \(gates)·hidden_size, hidden_size]), got shape \(r.shape)") }
        let hidden = hiddenSize ?? r.shape[2]
        let (gateWidth, overflow) = gates.multipliedReportingOverflow(by: hidden)
        guard !overflow, hidden > 0 else { throw OpError("hidden_size \(hidden) is out of range") }
        let gatesName = gates == 1 ? "hidden_size" : "\(gates)·hidden_size"
        try Self.check(w, "W", [(directions, "num_directions"), (gateWidth, gatesName), (inputSize, "input_size (X's last dimension)")])
        try Self.check(r, "R", [(directions, "num_directions"), (gateWidth, gatesName), (hidden, "hidden_size")])
        if let bias = input(3) {
            try Self.check(bias, "B", [(directions, "num_directions"), (2 * gateWidth, "2·\(gatesName)")])
        }
        let stateNames = batchMajor ? ["batch", "num_directions"] : ["num_directions", "batch"]
        let stateSizes = batchMajor ? [batch, directions] : [directions, batch]
        func state(_ index: Int) throws -> Tensor? {
            guard let tensor = input(index) else { return nil }
            try Self.check(tensor, Self.inputNames[index], [
                (stateSizes[0], stateNames[0]), (stateSizes[1], stateNames[1]), (hidden, "hidden_size"),
            ])
            return batchMajor ? try tensor.transposed([1, 0, 2]) : tensor
        }
        if let peepholes = input(7) {
            try Self.check(peepholes, "P", [(directions, "num_directions"), (3 * hidden, "3·hidden_size")])
        }
        var lengths = [Int](repeating: steps, count: batch)
        if let sequenceLengths = input(4) {
            guard sequenceLengths.dtype == .int32 || sequenceLengths.dtype == .int64 else {
                throw OpError("input sequence_lens must be int32, got \(sequenceLengths.dtype)")
            }
            try Self.check(sequenceLengths, "sequence_lens", [(batch, "batch")])
            lengths = try sequenceLengths.integers()
            if let bad = lengths.firstIndex(where: { $0 < 0 || $0 > steps }) {
                throw OpError("sequence_lens[\(bad)] is \(lengths[bad]); it must lie in 0...\(steps) (seq_length)")
            }
        }
        return RecurrentInputs(
            shape: RecurrentShape(
                steps: steps, batch: batch, inputSize: inputSize, hidden: hidden, directions: directions, gates: gates,
                gateWidth: gateWidth),
            x: x, w: w, r: r, bias: input(3), lengths: lengths, initialH: try state(5), initialC: try state(6),
            peepholes: input(7))
    }

    /// Throws unless `tensor` has exactly the `expected` extents, naming the first that differs.
    private static func check(_ tensor: Tensor, _ name: String, _ expected: [(size: Int, meaning: String)]) throws {
        let layout = "[" + expected.map(\.meaning).joined(separator: ", ") + "]"
        guard tensor.rank == expected.count else {
            throw OpError("input \(name) must have rank \(expected.count) (\(layout)), got shape \(tensor.shape)")
        }
        for (axis, (size, meaning)) in expected.enumerated() where tensor.shape[axis] != size {
            throw OpError("input \(name) has shape \(tensor.shape): dimension \(axis) must be \(meaning) = \(size)")
        }
    }
}

// MARK: - Backward

extension Recurrent: DifferentiableOperator {
    /// Backpropagation through time recomputes the forward pass with its gates recorded, from the inputs.
    func savedForBackward(wanted: [Bool]) -> SavedValues { SavedValues(inputs: Set(0..<8)) }

    /// Gradients with respect to `X, W, R, B, initial_h, initial_c` and `P`, from those arriving
    /// at `Y`, `Y_h` and `Y_c`: the forward pass again with each step's gates recorded, then
    /// the steps in reverse (see ``RecurrentPass``).
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let prepared = try prepare(step.inputs)
        func layout0(_ index: Int, _ perm: [Int]) throws -> Tensor? {
            guard index < step.outputGradients.count, let gradient = step.outputGradients[index] else { return nil }
            return batchMajor ? try gradient.transposed(perm) : gradient
        }
        let seeds = RecurrentSeeds(y: try layout0(0, [1, 2, 0, 3]), finalH: try layout0(1, [1, 0, 2]), finalC: try layout0(2, [1, 0, 2]))
        func run<T: GEMMScalar>(_ type: T.Type) throws -> RecurrentGradients {
            try RecurrentPass<T>(op: self, inputs: prepared).backward(seeds, wanted: step.wanted)
        }
        let gradients = try withGEMMType(prepared.x.dtype, kind.rawValue) { try run($0) }
        func original(_ tensor: Tensor?, _ perm: [Int]) throws -> Tensor? {
            try tensor.map { batchMajor ? try $0.transposed(perm) : $0 }
        }
        return [
            try original(gradients.x, [1, 0, 2]), gradients.w, gradients.r, gradients.bias, nil,
            try original(gradients.initialH, [1, 0, 2]), try original(gradients.initialC, [1, 0, 2]), gradients.peepholes,
        ].enumerated().map { step.wants($0.offset) ? $0.element : nil }
    }
}

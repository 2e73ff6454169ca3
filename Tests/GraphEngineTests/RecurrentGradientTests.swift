import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// One recurrent node to check: its kind, direction, layout and attributes.
struct RecurrentConfiguration: CustomTestStringConvertible, Sendable {
    var op: String
    var direction = "forward"
    var layout = 0
    var attributes: [String: Attribute] = [:]
    /// `sequence_lens`, or `nil` to omit it.
    var lengths: [Int]? = [3, 1, 2]
    var opset = 22
    var label = ""

    var testDescription: String { "\(op) \(direction) layout \(layout)\(label.isEmpty ? "" : " " + label)" }

    static let (steps, batch, inputSize, hidden) = (3, 3, 2, 2)
    var directions: Int { direction == "bidirectional" ? 2 : 1 }
    var gates: Int { ["RNN": 1, "GRU": 3, "LSTM": 4][op] ?? 1 }

    /// Random float64 inputs `X, W, R, B, initial_h` (and LSTM `initial_c, P`) with their positions in the node.
    func variables(seed: UInt64) throws -> (tensors: [Tensor], positions: [Int]) {
        let (s, b, i, h, d, g) = (Self.steps, Self.batch, Self.inputSize, Self.hidden, directions, gates)
        var shapes = [
            layout == 0 ? [s, b, i] : [b, s, i], [d, g * h, i], [d, g * h, h], [d, 2 * g * h], layout == 0 ? [d, b, h] : [b, d, h],
        ]
        var positions = [0, 1, 2, 3, 5]
        if op == "LSTM" {
            shapes += [layout == 0 ? [d, b, h] : [b, d, h], [d, 3 * h]]
            positions += [6, 7]
        }
        let tensors = try shapes.enumerated().map { index, shape in
            // Inputs up to 2 in magnitude drive some gates into their saturated and clipped ranges.
            try randomTensor(shape, seed: seed + UInt64(index), magnitude: index == 0 ? 0.2...2 : 0.1...1)
        }
        return (tensors, positions)
    }

    /// The node's attributes and constants as ``failures()`` builds them.
    func check(seeded: Int) throws -> GradientCheck {
        var attributes = self.attributes
        attributes["direction"] = .string(direction)
        attributes["hidden_size"] = .int(Self.hidden)
        if layout != 0 { attributes["layout"] = .int(layout) }
        let (tensors, positions) = try variables(seed: 400)
        let constants = try lengths.map { [(position: 4, tensor: try Tensor(shape: [$0.count], scalars: $0.map(Int32.init)))] } ?? []
        return GradientCheck(
            op: op, attributes: attributes, inputs: tensors, constants: constants, outputs: op == "LSTM" ? 3 : 2,
            seeded: seeded, opset: opset, positions: positions)
    }

    /// The first output's values on the checked inputs.
    func outputs() throws -> [Double] {
        let check = try check(seeded: 0)
        let executor = try Executor(model: check.model())
        let feeds = Dictionary(uniqueKeysWithValues: check.inputs.enumerated().map { ("x\($0.offset)", $0.element) })
        return try #require(try executor.run(feeds, fetch: ["y0"])["y0"]).doubles()
    }

    /// Finite-difference checks of every input's gradient, seeding each output in turn.
    func failures() throws -> [String] {
        try (0..<(op == "LSTM" ? 3 : 2)).flatMap { seeded in
            try check(seeded: seeded).run().map { "\(testDescription), output \(seeded): \($0)" }
        }
    }
}

/// Finite-difference checks of backpropagation through time (float64, the tolerance stated in
/// GradientCheck) for RNN, GRU and LSTM: every input's gradient from each output, in each
/// direction and layout, with sequences of unequal length and the attributes that change the
/// cell (clip, activations, GRU's linear_before_reset, LSTM's input_forget and peepholes).
@Suite struct RecurrentGradientTests {
    static let directionsAndLayouts: [RecurrentConfiguration] = ["RNN", "GRU", "LSTM"].flatMap { op in
        ["forward", "reverse", "bidirectional"].flatMap { direction in
            [0, 1].map { RecurrentConfiguration(op: op, direction: direction, layout: $0) }
        }
    }

    @Test(arguments: directionsAndLayouts)
    func everyInputFromEveryOutput(_ configuration: RecurrentConfiguration) throws {
        #expect(try configuration.failures() == [])
    }

    static let cellVariants: [RecurrentConfiguration] = [
        RecurrentConfiguration(
            op: "GRU", direction: "bidirectional", attributes: ["linear_before_reset": .int(1)], label: "linear_before_reset"),
        RecurrentConfiguration(
            op: "GRU", direction: "reverse", layout: 1, attributes: ["linear_before_reset": .int(1), "clip": .float(0.7)],
            label: "linear_before_reset clip"),
        RecurrentConfiguration(op: "GRU", attributes: ["clip": .float(0.6)], label: "clip"),
        RecurrentConfiguration(op: "LSTM", direction: "bidirectional", attributes: ["input_forget": .int(1)], label: "input_forget"),
        RecurrentConfiguration(op: "LSTM", direction: "reverse", attributes: ["clip": .float(0.5)], label: "clip"),
        RecurrentConfiguration(op: "RNN", direction: "bidirectional", attributes: ["clip": .float(0.8)], label: "clip"),
        RecurrentConfiguration(op: "LSTM", lengths: nil, opset: 7, label: "opset 7, no sequence_lens"),
        RecurrentConfiguration(op: "GRU", direction: "bidirectional", opset: 7, label: "opset 7"),
        RecurrentConfiguration(op: "RNN", direction: "reverse", layout: 1, opset: 14, label: "opset 14"),
        RecurrentConfiguration(op: "GRU", lengths: [3, 0, 2], label: "a sequence of length 0"),
        RecurrentConfiguration(
            op: "RNN", direction: "bidirectional",
            attributes: ["activations": .strings(["Softsign", "Softplus"])], label: "Softsign Softplus"),
        RecurrentConfiguration(
            op: "RNN", direction: "bidirectional",
            attributes: ["activations": .strings(["Affine", "ScaledTanh"]), "activation_alpha": .floats([0.7, 1.3]),
                "activation_beta": .floats([0.2, 0.6])],
            label: "Affine ScaledTanh"),
        RecurrentConfiguration(
            op: "GRU", direction: "bidirectional",
            attributes: ["activations": .strings(["HardSigmoid", "Elu", "Sigmoid", "LeakyRelu"]),
                "activation_alpha": .floats([0.3, 0.8, 0.05]), "activation_beta": .floats([0.45])],
            label: "HardSigmoid Elu LeakyRelu"),
        RecurrentConfiguration(
            op: "LSTM", attributes: ["activations": .strings(["Sigmoid", "Relu", "ThresholdedRelu"]), "activation_alpha": .floats([0.05])],
            label: "Relu ThresholdedRelu"),
    ]

    @Test(arguments: cellVariants)
    func cellVariant(_ configuration: RecurrentConfiguration) throws {
        #expect(try configuration.failures() == [])
    }

    /// Only some inputs wanted (initializer weights, as in GradCAM): the input gradient alone
    /// equals the one computed with every gradient wanted.
    @Test func inputGradientAloneWithInitializerWeights() throws {
        let configuration = RecurrentConfiguration(op: "LSTM", direction: "bidirectional")
        let (tensors, positions) = try configuration.variables(seed: 500)
        var constants = [(position: 4, tensor: try Tensor(shape: [3], scalars: [Int32(3), 2, 3]))]
        for (tensor, position) in zip(tensors, positions).dropFirst() { constants.append((position, tensor)) }
        let weightsFixed = GradientCheck(
            op: "LSTM", attributes: ["direction": .string("bidirectional"), "hidden_size": .int(2)], inputs: [tensors[0]],
            constants: constants, outputs: 3, positions: [0])
        #expect(try weightsFixed.run() == [])
    }
}

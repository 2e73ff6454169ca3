import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// One finite-difference check of a unary op at points that stay away from its bends.
struct UnaryGradientCase: Sendable, CustomTestStringConvertible {
    let op: String
    var attributes: [String: Attribute] = [:]
    /// The points; finite differences (h = 1e-6) never straddle a bend of the op.
    let points: [Double]
    var opset = 17
    var testDescription: String { attributes.isEmpty ? op : "\(op) \(attributes.keys.sorted())" }
}

/// `n` points with magnitudes in `magnitude` and both signs (seeded).
private func spread(_ magnitude: ClosedRange<Double>, seed: UInt64, count: Int = 10) -> [Double] {
    var random = SeededRandom(seed: seed)
    return random.awayFromZero(count, magnitude: magnitude)
}

/// The backward rules of the activations, math ops, variadic ops and LogSoftmax against central
/// finite differences (``GradientCheck``: float64, h = 1e-6, 1e-6 relative tolerance).
@Suite struct ActivationGradientTests {
    static let unaryCases: [UnaryGradientCase] = [
        // HardSigmoid (α 0.2, β 0.5) bends at ±2.5: inside, then beyond (zero slope).
        UnaryGradientCase(op: "HardSigmoid", points: spread(0.1...2.4, seed: 1) + spread(2.6...5, seed: 2)),
        UnaryGradientCase(op: "HardSigmoid", attributes: ["alpha": .float(0.5), "beta": .float(0.6)], points: [-3, -1.1, -0.5, 0.2, 0.7, 0.9, 2]),
        // HardSwish bends at ±3.
        UnaryGradientCase(op: "HardSwish", points: spread(0.1...2.9, seed: 3) + spread(3.1...6, seed: 4), opset: 14),
        UnaryGradientCase(op: "LeakyRelu", points: spread(0.1...3, seed: 5)),
        UnaryGradientCase(op: "LeakyRelu", attributes: ["alpha": .float(0.3)], points: spread(0.1...3, seed: 6)),
        UnaryGradientCase(op: "Elu", points: spread(0.1...3, seed: 7)),
        UnaryGradientCase(op: "Elu", attributes: ["alpha": .float(0.7)], points: spread(0.1...3, seed: 8)),
        UnaryGradientCase(op: "Selu", points: spread(0.1...3, seed: 9)),
        UnaryGradientCase(op: "Selu", attributes: ["alpha": .float(2), "gamma": .float(3)], points: spread(0.1...3, seed: 10)),
        UnaryGradientCase(op: "Celu", points: spread(0.1...3, seed: 11), opset: 12),
        UnaryGradientCase(op: "Celu", attributes: ["alpha": .float(2)], points: spread(0.1...3, seed: 12), opset: 12),
        UnaryGradientCase(op: "Softplus", points: spread(0.1...8, seed: 13)),
        UnaryGradientCase(op: "Softsign", points: spread(0.1...4, seed: 14)),
        UnaryGradientCase(op: "Mish", points: spread(0.1...5, seed: 15), opset: 18),
        UnaryGradientCase(op: "ThresholdedRelu", points: [-2, -0.5, 0.3, 0.9, 1.1, 2.5], opset: 10),
        UnaryGradientCase(op: "ThresholdedRelu", attributes: ["alpha": .float(-0.5)], points: [-2, -0.6, -0.4, 0.3, 1.1], opset: 10),
        UnaryGradientCase(op: "Shrink", points: [-2, -0.7, -0.3, 0.2, 0.6, 1.5], opset: 9),
        UnaryGradientCase(op: "Shrink", attributes: ["lambd": .float(1), "bias": .float(0.3)], points: [-2, -1.2, -0.5, 0.4, 1.3, 3], opset: 9),
        UnaryGradientCase(op: "Abs", points: spread(0.1...3, seed: 16)),
        UnaryGradientCase(op: "Log", points: spread(0.1...3, seed: 17).map(abs)),
        UnaryGradientCase(op: "Reciprocal", points: spread(0.3...3, seed: 18)),
        UnaryGradientCase(op: "Sin", points: spread(0.1...6, seed: 19)),
        UnaryGradientCase(op: "Cos", points: spread(0.1...6, seed: 20)),
        // Steps: zero slope between the jumps (integers, or halves for Round, or 0 for Sign).
        UnaryGradientCase(op: "Floor", points: [-2.3, -1.7, -0.2, 0.3, 1.2, 2.6]),
        UnaryGradientCase(op: "Ceil", points: [-2.3, -1.7, -0.2, 0.3, 1.2, 2.6]),
        UnaryGradientCase(op: "Round", points: [-2.3, -1.7, -0.2, 0.3, 1.2, 2.6]),
        UnaryGradientCase(op: "Sign", points: [-2.3, -1.7, -0.2, 0.3, 1.2, 2.6]),
    ]

    @Test(arguments: unaryCases)
    func unaryRuleMatchesFiniteDifferences(_ test: UnaryGradientCase) throws {
        let x = try Tensor(shape: [test.points.count], scalars: test.points)
        let check = GradientCheck(op: test.op, attributes: test.attributes, inputs: [x], opset: test.opset)
        #expect(try check.run() == [])
    }

    @Test func preluAgainstInputAndPerChannelSlope() throws {
        // A [3, 1, 1] slope over [2, 3, 4, 5], as exporters write nn.PReLU(3): its gradient is
        // summed over the batch and spatial axes.
        let x = try randomTensor([2, 3, 4, 5], seed: 30)
        let slope = try randomTensor([3, 1, 1], seed: 31)
        #expect(try GradientCheck(op: "PRelu", inputs: [x, slope]).run() == [])
        // A one-element slope held constant, and a [5] slope broadcast along the last axis.
        #expect(try GradientCheck(op: "PRelu", inputs: [x], constants: [(1, randomTensor([1], seed: 32))]).run() == [])
        #expect(try GradientCheck(op: "PRelu", inputs: [x, randomTensor([5], seed: 33)], opset: 9).run() == [])
    }

    @Test(arguments: ["Max", "Min", "Sum", "Mean"])
    func variadicOpsBroadcastTheirInputs(_ op: String) throws {
        // Three inputs broadcast to [2, 3, 4] (random values, so no ties), then two, then one.
        let a = try randomTensor([2, 3, 4], seed: 40)
        let b = try randomTensor([3, 1], seed: 41)
        let c = try randomTensor([4], seed: 42)
        #expect(try GradientCheck(op: op, inputs: [a, b, c]).run() == [])
        #expect(try GradientCheck(op: op, inputs: [b, a]).run() == [])
        #expect(try GradientCheck(op: op, inputs: [c]).run() == [])
        // Before opset 8 the inputs share one shape.
        #expect(try GradientCheck(op: op, inputs: [a, try randomTensor([2, 3, 4], seed: 43)], opset: 7).run() == [])
    }

    @Test(arguments: [(13, nil), (13, 1), (13, 0), (11, nil), (11, 2), (11, 0)] as [(Int, Int?)])
    func logSoftmaxAlongItsAxisOrAxisGroup(_ opset: Int, _ axis: Int?) throws {
        // Opset 13 works along one axis (default -1); opset 11 flattens from `axis` (default 1) on.
        let check = GradientCheck(
            op: "LogSoftmax", attributes: axis.map { ["axis": .int($0)] } ?? [:], inputs: [try randomTensor([2, 3, 4], seed: 50, magnitude: 0.1...3)],
            opset: opset)
        #expect(try check.run() == [])
    }
}

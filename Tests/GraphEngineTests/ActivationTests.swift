import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// The ops' typed errors, their float32 kernels against float64, and the reverse pass through
/// ops that pass no gradient.
@Suite struct ActivationBehaviourTests {
    func executor(_ op: String, inputs: Int = 1, attributes: [String: Attribute] = [:], opset: Int = 17) throws -> Executor {
        try Executor(model: makeModel(
            [Node(name: "node", opType: op, inputs: (0..<inputs).map { "x\($0)" }, outputs: ["y"], attributes: attributes)],
            inputs: (0..<inputs).map { ValueInfo(name: "x\($0)", elementType: nil) }, outputs: ["y"], opset: opset))
    }

    @Test func variadicOpsNeedOneShapeBeforeOpset8() throws {
        let a = try Tensor(shape: [2, 3], scalars: [Float](repeating: 1, count: 6))
        let b = try Tensor(shape: [3], scalars: [Float](repeating: 2, count: 3))
        for op in ["Max", "Min", "Sum", "Mean"] {
            let message = errorText { try self.executor(op, inputs: 2, opset: 7).run(["x0": a, "x1": b]) }
            #expect(message.contains("node 'node' (\(op))") && message.contains("opset 8") && message.contains("[2, 3]"), "\(message)")
            #expect(try self.executor(op, inputs: 2, opset: 8).run(["x0": a, "x1": b])["y"]?.shape == [2, 3])
        }
    }

    @Test func preluSlopeMustBroadcastToTheInput() throws {
        let x = try Tensor(shape: [2, 3], scalars: [Float](repeating: -1, count: 6))
        // [2, 3, 1] would broadcast x up to rank 3; [2] does not line up with the last axis.
        for shape in [[2, 3, 1], [2]] {
            let slope = try Tensor(shape: shape, scalars: [Float](repeating: 0.5, count: shape.reduce(1, *)))
            let message = errorText { try self.executor("PRelu", inputs: 2).run(["x0": x, "x1": slope]) }
            #expect(message.contains("slope of shape \(shape)") && message.contains("[2, 3]"), "\(message)")
        }
    }

    @Test func celuRejectsAZeroAlphaAtLoad() {
        let message = errorText { try self.executor("Celu", attributes: ["alpha": .float(0)], opset: 12) }
        #expect(message.contains("alpha") && message.contains("must not be 0"), "\(message)")
    }

    static let pointwise = [
        "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish", "ThresholdedRelu",
        "Shrink", "Abs", "Log", "Reciprocal", "Sin", "Cos", "Floor", "Ceil", "Round", "Sign", "PRelu", "Sigmoid",
    ]

    @Test(arguments: pointwise)
    func float32KernelsMatchFloat64(_ op: String) throws {
        // 4,097 float32 points of [-6, 6] (of [0.05, 6] for Log and Reciprocal), a seeded upstream
        // gradient in (-1, 1), forward and backward in float32 (the specialized loops) against
        // float64. f and f′ take a few float32 roundings plus libm's (≤ 1 ulp): within 1e-6 of
        // max(1, |exact|), about 8 ulps; a wrong branch or constant is off by far more.
        let count = 4_097
        let positive = op == "Log" || op == "Reciprocal"
        let (start, width): (Double, Double) = positive ? (0.05, 5.95) : (-6, 12)
        let points = (0..<count).map { (k: Int) -> Float in Float(start + width * Double(k) / Double(count - 1)) }
        var generator = SeededGenerator(seed: 5)
        let upstream = (0..<count).map { _ in Float.random(in: -1..<1, using: &generator) }
        let slope = try Tensor(shape: [1], scalars: [Float(0.3)])
        func run(_ type: DType) throws -> (forward: [Double], backward: [Double]) {
            let initializers: [String: Tensor] = op == "PRelu" ? ["slope": try slope.converted(to: type)] : [:]
            let node = Node(opType: op, inputs: op == "PRelu" ? ["x", "slope"] : ["x"], outputs: ["y"])
            let executor = try Executor(model: makeModel(
                [node], inputs: [ValueInfo(name: "x", elementType: type)], outputs: ["y"], initializers: initializers,
                opset: op == "Celu" ? 28 : 22))
            let x = try Tensor(shape: [count], scalars: points).converted(to: type)
            let g = try Tensor(shape: [count], scalars: upstream).converted(to: type)
            let result = try executor.gradients(["x": x], seed: { _ in g }, wrt: ["x"])
            return (try result.output.doubles(), try #require(result.gradients["x"]).doubles())
        }
        let (single, double) = (try run(.float32), try run(.float64))
        func close(_ a: [Double], _ b: [Double]) -> Bool { zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) } }
        #expect(close(single.forward, double.forward), "\(op) forward")
        #expect(close(single.backward, double.backward), "\(op) backward")
    }

    @Test func noGradientFlowsBackThroughComparisonsAndTests() throws {
        // y = Where(Not(IsNaN(x)) and x > 0.2 and not IsInf(x), Sin(x), Cos(x)) · Cast(x ≤ 1):
        // the gradient reaches x only through Sin, Cos and the Mul's other operand.
        let nodes = [
            Node(opType: "Greater", inputs: ["x", "t"], outputs: ["above"]),
            Node(opType: "IsNaN", inputs: ["x"], outputs: ["nan"]),
            Node(opType: "Not", inputs: ["nan"], outputs: ["number"]),
            Node(opType: "IsInf", inputs: ["x"], outputs: ["inf"]),
            Node(opType: "Xor", inputs: ["inf", "number"], outputs: ["finite"]),
            Node(opType: "And", inputs: ["above", "finite"], outputs: ["pick"]),
            Node(opType: "Sin", inputs: ["x"], outputs: ["s"]),
            Node(opType: "Cos", inputs: ["x"], outputs: ["c"]),
            Node(opType: "Where", inputs: ["pick", "s", "c"], outputs: ["w"]),
            Node(opType: "LessOrEqual", inputs: ["x", "one"], outputs: ["low"]),
            Node(opType: "Cast", inputs: ["low"], outputs: ["mask"], attributes: ["to": .int(11)]),
            Node(opType: "Mul", inputs: ["w", "mask"], outputs: ["y"]),
        ]
        let executor = try Executor(model: makeModel(
            nodes, inputs: [ValueInfo(name: "x", elementType: .float64)], outputs: ["y"],
            initializers: ["t": Tensor(scalar: 0.2), "one": Tensor(scalar: 1.0)]))
        let points = [-1.3, -0.4, 0.1, 0.3, 0.8, 1.4, 2.5]
        let x = try Tensor(shape: [points.count], scalars: points)
        let result = try executor.gradients(["x": x], seed: { try Tensor(zeros: $0.dtype, shape: $0.shape).adding(1) }, wrt: ["x"])
        let gradient = try #require(result.gradients["x"]).scalars(as: Double.self)
        // Central differences of the whole graph (h = 1e-6, no point within 1e-3 of a switch).
        for (i, value) in points.enumerated() {
            func y(_ shift: Double) throws -> Double {
                var shifted = points
                shifted[i] = value + shift
                return try #require(try executor.run(["x": Tensor(shape: [points.count], scalars: shifted)])["y"]).scalars(as: Double.self)[i]
            }
            let numeric = (try y(1e-6) - y(-1e-6)) / 2e-6
            #expect(abs(gradient[i] - numeric) <= 1e-8, "x = \(value): \(gradient[i]) vs \(numeric)")
        }
    }
}

private extension Tensor {
    /// This float64 tensor plus a constant.
    func adding(_ value: Double) throws -> Tensor { try Tensor(shape: shape, scalars: try doubles().map { $0 + value }) }
}

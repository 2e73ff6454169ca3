import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

@Suite struct ElementwiseGradientTests {
    @Test(arguments: ["Add", "Sub", "Mul", "Div"])
    func broadcastingBinaryOps(_ op: String) throws {
        // [2, 3, 4] with [3, 1]: the second operand's gradient is summed over broadcast axes.
        let check = GradientCheck(op: op, inputs: [try randomTensor([2, 3, 4], seed: 1), try randomTensor([3, 1], seed: 2)])
        #expect(try check.run() == [])
    }

    @Test(arguments: ["Add", "Mul", "Div"])
    func binaryOpsWithAConstantOperand(_ op: String) throws {
        // Only the first operand needs a gradient, so only what its rule reads is kept.
        let check = GradientCheck(op: op, inputs: [try randomTensor([2, 3], seed: 12)], constants: [(1, try randomTensor([3], seed: 13))])
        #expect(try check.run() == [])
        let flipped = GradientCheck(op: op, inputs: [try randomTensor([3], seed: 14)], constants: [(0, try randomTensor([2, 3], seed: 15))])
        #expect(try flipped.run() == [])
    }

    @Test(arguments: ["Neg", "Relu", "Sqrt", "Exp", "Erf", "Sigmoid", "Tanh", "Gelu", "Identity", "Dropout"])
    func unaryOps(_ op: String) throws {
        let magnitude: ClosedRange<Double> = op == "Sqrt" ? 0.5...2 : 0.1...1
        var x = try randomTensor([2, 5], seed: 3, magnitude: magnitude)
        if op == "Sqrt" { x = try Tensor(shape: [2, 5], scalars: x.doubles().map(abs)) }
        let check = GradientCheck(op: op, inputs: [x], opset: op == "Gelu" ? 20 : 17)
        #expect(try check.run() == [])
    }

    @Test func geluTanhApproximation() throws {
        let check = GradientCheck(op: "Gelu", attributes: ["approximate": .string("tanh")], inputs: [try randomTensor([7], seed: 4)], opset: 20)
        #expect(try check.run() == [])
    }

    @Test func powAgainstBaseAndExponent() throws {
        let base = try Tensor(shape: [2, 3], scalars: try randomTensor([2, 3], seed: 5).doubles().map { abs($0) + 0.5 })
        #expect(try GradientCheck(op: "Pow", inputs: [base, try randomTensor([3], seed: 6)]).run() == [])
        // The exported LayerNorm square: exponent 2 as a constant.
        #expect(try GradientCheck(op: "Pow", inputs: [try randomTensor([4], seed: 7)], constants: [(1, Tensor(scalar: 2.0))]).run() == [])
    }

    @Test func clipPassesGradientStrictlyInsideTheBounds() throws {
        let x = try Tensor(shape: [6], scalars: [-2.0, -0.55, 0.3, 0.45, 0.9, 3])
        let check = GradientCheck(op: "Clip", inputs: [x], constants: [(1, Tensor(scalar: -0.5)), (2, Tensor(scalar: 0.5))], opset: 13)
        #expect(try check.run() == [])
        let attributes = GradientCheck(op: "Clip", attributes: ["min": .float(-0.5), "max": .float(0.5)], inputs: [try x.converted(to: .float32)], opset: 6)
        #expect(try attributes.run() == [])
    }

    @Test func whereRoutesToTheChosenBranch() throws {
        let condition = try Tensor(shape: [3, 1], scalars: [true, false, true])
        let check = GradientCheck(op: "Where", inputs: [try randomTensor([3, 4], seed: 8), try randomTensor([4], seed: 9)], constants: [(0, condition)])
        #expect(try check.run() == [])
    }

    @Test func modAndCast() throws {
        let a = try randomTensor([5], seed: 10, magnitude: 1...3)
        let b = try randomTensor([5], seed: 11, magnitude: 0.7...0.9)
        #expect(try GradientCheck(op: "Mod", attributes: ["fmod": .int(1)], inputs: [a, b]).run() == [])
        #expect(try GradientCheck(op: "Cast", attributes: ["to": .int(11)], inputs: [a]).run() == [])
    }

    /// An override replaces an op's backward rule for one pass; here guided backpropagation's Relu.
    @Test func backwardOverrideReplacesTheRule() throws {
        let x = try Tensor(shape: [4], scalars: [Float(1), -1, 2, 3])
        let model = Model(
            opsets: ["": 17],
            graph: Graph(nodes: [Node(opType: "Relu", inputs: ["x"], outputs: ["y"])], inputs: [ValueInfo(name: "x")], outputs: [ValueInfo(name: "y")]))
        let seed = try Tensor(shape: [4], scalars: [Float(1), 1, -1, 2])
        let executor = try Executor(model: model)
        let plain = try executor.gradients(["x": x], seed: { _ in seed }, wrt: ["x"])
        let guided = try executor.gradients(
            ["x": x], seed: { _ in seed }, wrt: ["x"], overrides: ["Relu": { _, standard in try standard().map { try $0?.positivePart() } }])
        let other = try executor.gradients(["x": x], seed: { _ in seed }, wrt: ["x"], overrides: ["Sigmoid": { _, _ in [nil] }])
        #expect(try plain.gradients["x"]?.scalars(as: Float.self) == [1, 0, -1, 2])
        #expect(try guided.gradients["x"]?.scalars(as: Float.self) == [1, 0, 0, 2])
        #expect(try other.gradients["x"]?.scalars(as: Float.self) == [1, 0, -1, 2])  // an override of another op type changes nothing
    }
}

import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

@Suite struct OutputKindTests {
    /// `x [2, 3] → MatMul → (Softmax) → (Flatten)`.
    func model(_ tail: [ONNXBuilder.NodeSpec], output: String) throws -> Executor {
        let weights: [Float] = [0.5, -1, 2, 0.25, 1, -0.5]
        let builder = ONNXBuilder(
            nodes: [.init("MatMul", ["x", "w"], ["scores"])] + tail, initializers: [.float("w", dims: [3, 2], weights)],
            inputs: [.init("x", dims: [2, 3])], outputs: [.init(output, dims: [2, 2])])
        return try Executor(model: Model(serializedData: builder.serialized()))
    }

    @Test func aSoftmaxAtTheEndMeansProbabilities() throws {
        let x = try Tensor(shape: [2, 3], scalars: [Float(1), 2, 3, -1, 0, 1])
        let plain = try model([], output: "scores")
        #expect(plain.outputKind(of: "scores") == .auto)
        let softmax = try model([.init("Softmax", ["scores"], ["p"], ints: ["axis": 1])], output: "p")
        #expect(softmax.outputKind(of: "p") == .probabilities)
        let flattened = try model([.init("Softmax", ["scores"], ["p"]), .init("Flatten", ["p"], ["q"])], output: "q")
        #expect(flattened.outputKind(of: "q") == .probabilities)
        // The probabilities are the output itself, never softmaxed again.
        let values = try softmax.run(["x": x])["p"]?.doubles() ?? []
        let read = try softmax.classProbabilities(x, output: "p")
        #expect(read.flatMap { $0 } == values)
        // Scores are softmaxed; --output-kind probabilities would take them as they are.
        let scores = try plain.run(["x": x])["scores"]?.doubles() ?? []
        #expect(try plain.classProbabilities(x, output: "scores")[0] == ClassProbabilities.softmax(scores[0..<2]))
        #expect(try plain.classProbabilities(x, output: "scores", kind: .probabilities)[0] == Array(scores[0..<2]))
    }
}

import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// ConvTranspose: finite-difference checks of the backward rule for X, W and B (float64 and the
/// float32 product path), its agreement with Conv's input gradient, and shape errors.
@Suite struct ConvTransposeTests {
    static let settings: [(String, [Int], [Int], [String: Attribute])] = [
        ("1-D stride and pads", [2, 2, 5], [2, 3, 3], ["strides": .ints([2]), "pads": .ints([1, 2])]),
        ("2-D groups, dilations, output_padding", [1, 4, 3, 2], [4, 1, 2, 3],
         ["group": .int(2), "strides": .ints([2, 3]), "dilations": .ints([2, 1]), "output_padding": .ints([1, 2])]),
        ("2-D SAME_LOWER", [1, 2, 3, 3], [2, 2, 3, 3], ["strides": .ints([2, 2]), "auto_pad": .string("SAME_LOWER")]),
        ("2-D output_shape", [1, 2, 2, 3], [2, 3, 3, 2], ["strides": .ints([2, 2]), "output_shape": .ints([4, 7])]),
        ("3-D", [1, 2, 2, 2, 3], [2, 2, 2, 2, 2], ["strides": .ints([1, 2, 2]), "pads": .ints([0, 1, 0, 1, 0, 1])]),
    ]

    @Test(arguments: settings)
    func gradientsForInputWeightsAndBias(_ setting: (String, [Int], [Int], [String: Attribute])) throws {
        let (_, xShape, wShape, attributes) = setting
        let filters = wShape[1] * (attributes["group"].map { if case .int(let g) = $0 { g } else { 1 } } ?? 1)
        let check = GradientCheck(
            op: "ConvTranspose", attributes: attributes,
            inputs: [try randomTensor(xShape, seed: 100), try randomTensor(wShape, seed: 101), try randomTensor([filters], seed: 102)])
        #expect(try check.run() == [], "\(setting.0)")
    }

    @Test func float32Gradients() throws {
        let check = GradientCheck(
            op: "ConvTranspose", attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 0, 0, 1])],
            inputs: [try randomTensor([2, 3, 3, 3], seed: 103, dtype: .float32), try randomTensor([3, 2, 3, 3], seed: 104, dtype: .float32)])
        #expect(try check.run() == [])
    }

    /// ConvTranspose(g, W) is Conv's gradient with respect to its input for the same weights.
    @Test func equalsTheInputGradientOfConv() throws {
        let x = try randomTensor([1, 3, 7, 6], seed: 105)
        let w = try randomTensor([4, 3, 3, 2], seed: 106)
        let g = try randomTensor([1, 4, 4, 3], seed: 107)
        let window: [String: Attribute] = ["strides": .ints([2, 2]), "pads": .ints([1, 0, 1, 1]), "dilations": .ints([1, 2])]
        let conv = Model(
            opsets: ["": 17],
            graph: Graph(nodes: [Node(opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: window)],
                         initializers: ["w": w], inputs: [ValueInfo(name: "x", elementType: .float64)],
                         outputs: [ValueInfo(name: "y", elementType: nil)]))
        let gradient = try #require(
            try Executor(model: conv).gradients(["x": x], seed: { _ in g }, output: "y", wrt: ["x"]).gradients["x"])
        // The same pads give back the input's extents here (7 = 2·3 + 3 − 2, 6 = 2·2 + 3 − 1).
        let transposed = window
        let model = Model(
            opsets: ["": 17],
            graph: Graph(nodes: [Node(opType: "ConvTranspose", inputs: ["g", "w"], outputs: ["y"], attributes: transposed)],
                         initializers: ["w": w], inputs: [ValueInfo(name: "g", elementType: .float64)],
                         outputs: [ValueInfo(name: "y", elementType: nil)]))
        let y = try #require(try Executor(model: model).run(["g": g])["y"])
        // Same products in the same tiles, accumulated by the same col2im: equal bits.
        #expect(try y.scalars(as: Double.self) == gradient.scalars(as: Double.self))
    }

    @Test func badShapesGiveErrorsNamingTheNode() throws {
        func run(_ x: [Int], _ w: [Int], _ attributes: [String: Attribute] = [:], bias: Int? = nil) throws -> Tensor {
            var inputs = ["x", "w"]
            var initializers = ["w": try randomTensor(w, seed: 108, dtype: .float32)]
            if let bias {
                inputs.append("b")
                initializers["b"] = try randomTensor([bias], seed: 109, dtype: .float32)
            }
            let model = Model(
                opsets: ["": 17],
                graph: Graph(nodes: [Node(name: "up", opType: "ConvTranspose", inputs: inputs, outputs: ["y"], attributes: attributes)],
                             initializers: initializers, inputs: [ValueInfo(name: "x")], outputs: [ValueInfo(name: "y")]))
            return try #require(try Executor(model: model).run(["x": try randomTensor(x, seed: 110, dtype: .float32)])["y"])
        }
        #expect(errorText { try run([1, 3, 4, 4], [2, 2, 3, 3]) }.contains("do not fit 3 input channels"))
        #expect(errorText { try run([1, 2, 4, 4], [2, 2, 3, 3], bias: 3) }.contains("bias has 3 values"))
        #expect(errorText { try run([1, 2, 4, 4], [2, 2, 3, 3], ["pads": .ints([4, 4, 4, 4])]) }.contains("exceed"))
        #expect(errorText { try run([1, 2, 4, 4], [2, 2, 3, 3], ["output_shape": .ints([20, 20])]) }.contains("inconsistent"))
        #expect(errorText { try run([1, 2, 4, 4], [2, 2, 3, 3], ["kernel_shape": .ints([2, 2])]) }.contains("disagrees"))
        #expect(errorText { try run([1, 2, 4, 4], [2, 2, 3, 3], ["strides": .ints([1 << 30, 1 << 30])]) }.contains("node 'up'"))
        #expect(errorText { try run([1, 2, 4, 4], [2, 2, 3, 3], ["output_padding": .ints([-1, 0])]) }.contains("output_padding"))
    }
}

import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Col2Im: finite-difference checks of its backward rule (im2col) over 1 to 3 spatial axes with
/// strides, pads and dilations (tolerances as stated in GradientCheck), the float16 path, and the
/// errors inconsistent shapes give. Its forward values are checked against the upstream node tests
/// and, for the other element types and attribute mixes, Fixtures/op-cases (OpCaseTests).
@Suite struct Col2ImTests {
    /// Runs one Col2Im node on `x` with constant `image` and `block` shapes.
    func fold(_ x: Tensor, image: [Int], block: [Int], _ attributes: [String: Attribute] = [:]) throws -> Tensor {
        let node = Node(name: "col2im", opType: "Col2Im", inputs: ["x", "image", "block"], outputs: ["y"], attributes: attributes)
        let model = Model(
            opsets: ["": 18],
            graph: Graph(
                nodes: [node], initializers: ["image": try int64s(image), "block": try int64s(block)],
                inputs: [ValueInfo(name: "x", elementType: x.dtype)], outputs: [ValueInfo(name: "y", elementType: nil)]))
        return try #require(try Executor(model: model).run(["x": x])["y"])
    }

    /// (label, input shape, image shape, block shape, attributes): every block position is a column.
    static let settings: [(String, [Int], [Int], [Int], [String: Attribute])] = [
        ("2-D overlapping blocks", [2, 2 * 4, 6], [3, 4], [2, 2], [:]),
        ("2-D strides, pads, dilations", [2, 3 * 6, 8], [5, 6], [2, 3],
         ["strides": .ints([2, 1]), "pads": .ints([1, 0, 0, 2]), "dilations": .ints([2, 2])]),
        ("3-D", [1, 2 * 4, 24], [3, 4, 3], [1, 2, 2], ["strides": .ints([1, 1, 2]), "pads": .ints([0, 1, 0, 0, 0, 1])]),
        ("1-D", [2, 3, 2], [5], [3], ["strides": .ints([2]), "pads": .ints([1, 0])]),
    ]

    @Test(arguments: settings)
    func gradientIsIm2col(_ setting: (String, [Int], [Int], [Int], [String: Attribute])) throws {
        let (label, shape, image, block, attributes) = setting
        let check = GradientCheck(
            op: "Col2Im", attributes: attributes, inputs: [try randomTensor(shape, seed: 140)],
            constants: [(1, try int64s(image)), (2, try int64s(block))], opset: 18)
        #expect(try check.run() == [], "\(label)")
    }

    @Test func float32Gradient() throws {
        let check = GradientCheck(
            op: "Col2Im", attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 1, 0, 1])],
            inputs: [try randomTensor([2, 2 * 9, 6], seed: 141, dtype: .float32)],
            constants: [(1, try int64s([5, 6])), (2, try int64s([3, 3]))], opset: 18)
        #expect(try check.run() == [])
    }

    /// float16 runs the float32 fold and rounds once; its gradient goes through the float32 rule.
    @Test func float16ForwardAndGradient() throws {
        // Quarters: every sum of these is exact in float16, so the float32 fold is the answer.
        let values = (0..<16).map { Float($0 % 7) / 4 - 0.75 }
        let x = try Tensor(shape: [1, 4, 4], scalars: values)
        let want = try fold(x, image: [3, 3], block: [2, 2]).scalars(as: Float.self)
        let half = try fold(x.converted(to: .float16), image: [3, 3], block: [2, 2])
        #expect(half.dtype == .float16)
        #expect(try half.converted(to: .float32).scalars(as: Float.self) == want)
        let model = Model(
            opsets: ["": 18],
            graph: Graph(
                nodes: [Node(opType: "Col2Im", inputs: ["x", "image", "block"], outputs: ["y"])],
                initializers: ["image": try int64s([3, 3]), "block": try int64s([2, 2])],
                inputs: [ValueInfo(name: "x", elementType: .float16)], outputs: [ValueInfo(name: "y", elementType: nil)]))
        let result = try Executor(model: model).gradients(
            ["x": x.converted(to: .float16)],
            seed: { try Tensor(shape: $0.shape, scalars: [Float](repeating: 1, count: $0.count)).converted(to: .float16) },
            output: "y", wrt: ["x"])
        let gradient = try #require(result.gradients["x"])
        #expect(gradient.dtype == .float16 && gradient.shape == [1, 4, 4])
        // With an all-ones upstream gradient, im2col reads 1 wherever a block lies inside the image:
        // 2×2 blocks on a 3×3 image never leave it.
        #expect(try gradient.converted(to: .float32).scalars(as: Float.self) == [Float](repeating: 1, count: 16))
    }

    @Test func inconsistentShapesGiveErrorsNamingTheNode() throws {
        let x = try randomTensor([1, 4, 4], seed: 142)
        #expect(errorText { try fold(x, image: [3, 3], block: [2, 2]) } == "no error")
        let columns = errorText { try fold(x, image: [4, 3], block: [2, 2]) }
        #expect(columns.contains("node 'col2im'") && columns.contains("holds 6 block positions"), "\(columns)")
        #expect(errorText { try fold(x, image: [3, 3], block: [3, 1]) }.contains("do not split into blocks of 3"))
        #expect(errorText { try fold(x, image: [3, 3], block: [2]) }.contains("same 1 to 3 spatial axes"))
        #expect(errorText { try fold(x, image: [3, 3, 1, 1], block: [2, 2, 1, 1]) }.contains("same 1 to 3 spatial axes"))
        #expect(errorText { try fold(x, image: [1, 3], block: [2, 2]) }.contains("does not fit spatial axis 0"))
        #expect(errorText { try fold(x, image: [3, 3], block: [0, 2]) }.contains("block_shape"))
        #expect(errorText { try fold(x, image: [3, -3], block: [2, 2]) }.contains("image_shape"))
        #expect(errorText { try fold(x, image: [3, 1 << 40], block: [2, 2]) }.contains("image_shape"))
        #expect(errorText { try fold(x, image: [3, 3], block: [2, 2], ["strides": .ints([0, 1])]) }.contains("strides"))
        #expect(errorText { try fold(x, image: [3, 3], block: [2, 2], ["pads": .ints([1, 1])]) }.contains("pads"))
        #expect(errorText { try fold(try randomTensor([4, 4], seed: 143), image: [3, 3], block: [2, 2]) }.contains("[N, C·∏block_shape, L]"))
    }
}

import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Finite-difference checks of the backward rules of linear, convolution, pooling,
/// normalization, softmax and reduction ops (float64, tolerance as stated in GradientCheck).
@Suite struct LayerGradientTests {
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemm(_ transposes: (Bool, Bool)) throws {
        let (transA, transB) = transposes
        let a = try randomTensor(transA ? [4, 3] : [3, 4], seed: 20)
        let b = try randomTensor(transB ? [5, 4] : [4, 5], seed: 21)
        let check = GradientCheck(
            op: "Gemm", attributes: ["alpha": .float(0.5), "beta": .float(2), "transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0)],
            inputs: [a, b, try randomTensor([5], seed: 22)])
        #expect(try check.run() == [])
    }

    @Test(arguments: [([2, 3, 4], [4, 5]), ([2, 1, 3, 4], [3, 4, 2]), ([4], [2, 4, 3]), ([2, 3, 4], [4]), ([4], [4, 3]), ([3, 4], [4, 2])])
    func matmulBatchedBroadcastAndVectors(_ shapes: ([Int], [Int])) throws {
        let check = GradientCheck(op: "MatMul", inputs: [try randomTensor(shapes.0, seed: 23), try randomTensor(shapes.1, seed: 24)])
        #expect(try check.run() == [])
    }

    @Test func convWithGroupsStridesPadsAndDilations() throws {
        let x = try randomTensor([2, 4, 6, 5], seed: 25)
        let w = try randomTensor([6, 2, 3, 2], seed: 26)
        let check = GradientCheck(
            op: "Conv",
            attributes: ["group": .int(2), "strides": .ints([2, 1]), "pads": .ints([1, 0, 1, 1]), "dilations": .ints([1, 2])],
            inputs: [x, w, try randomTensor([6], seed: 27)])
        #expect(try check.run() == [])
    }

    @Test func depthwiseAndPointwiseConv() throws {
        let x = try randomTensor([1, 3, 5, 5], seed: 28)
        let depthwise = GradientCheck(
            op: "Conv", attributes: ["group": .int(3), "auto_pad": .string("SAME_UPPER")],
            inputs: [x, try randomTensor([3, 1, 3, 3], seed: 29)])
        #expect(try depthwise.run() == [])
        let pointwise = GradientCheck(op: "Conv", inputs: [x, try randomTensor([4, 3, 1, 1], seed: 30)])
        #expect(try pointwise.run() == [])
    }

    @Test func maxAndAveragePools() throws {
        // Distinct values, so no two taps of a window tie and the max is differentiable.
        let x = try Tensor(shape: [1, 2, 5, 5], scalars: (0..<50).map { Double(($0 * 37) % 50) / 10 - 2.45 })
        let window: [String: Attribute] = ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]
        #expect(try GradientCheck(op: "MaxPool", inputs: [x]).withAttributes(window).run() == [])
        #expect(try GradientCheck(op: "AveragePool", inputs: [x]).withAttributes(window).run() == [])
        var counted = window
        counted["count_include_pad"] = .int(1)
        counted["ceil_mode"] = .int(1)
        #expect(try GradientCheck(op: "AveragePool", inputs: [x]).withAttributes(counted).run() == [])
        #expect(try GradientCheck(op: "GlobalAveragePool", inputs: [x]).run() == [])
        #expect(try GradientCheck(op: "GlobalMaxPool", inputs: [x]).run() == [])
    }

    @Test func normalizations() throws {
        let x = try randomTensor([2, 3, 4], seed: 31)
        let batchNorm = GradientCheck(
            op: "BatchNormalization", inputs: [x],
            constants: [
                (1, try randomTensor([3], seed: 32)), (2, try randomTensor([3], seed: 33)),
                (3, try randomTensor([3], seed: 34)), (4, try Tensor(shape: [3], scalars: [0.5, 0.8, 1.3])),
            ])
        #expect(try batchNorm.run() == [])
        let layerNorm = GradientCheck(
            op: "LayerNormalization", attributes: ["axis": .int(-1)],
            inputs: [x, try randomTensor([4], seed: 36), try randomTensor([4], seed: 37)])
        #expect(try layerNorm.run() == [])
        let twoAxes = GradientCheck(op: "LayerNormalization", attributes: ["axis": .int(1)], inputs: [x, try randomTensor([3, 4], seed: 38)])
        #expect(try twoAxes.run() == [])
    }

    @Test func softmaxBothConventionsAndReductions() throws {
        let x = try randomTensor([2, 3, 4], seed: 39)
        #expect(try GradientCheck(op: "Softmax", attributes: ["axis": .int(1)], inputs: [x]).run() == [])
        #expect(try GradientCheck(op: "Softmax", attributes: ["axis": .int(1)], inputs: [x], opset: 11).run() == [])
        #expect(try GradientCheck(op: "ReduceMean", inputs: [x], constants: [(1, try int64s([0, 2]))], opset: 18).run() == [])
        #expect(try GradientCheck(op: "ReduceMean", attributes: ["axes": .ints([-1]), "keepdims": .int(0)], inputs: [x], opset: 13).run() == [])
        #expect(try GradientCheck(op: "ReduceSum", attributes: ["keepdims": .int(0)], inputs: [x], constants: [(1, try int64s([1]))]).run() == [])
    }
}

@Suite struct ShapeGradientTests {
    let x: Tensor

    init() throws { x = try randomTensor([2, 3, 4], seed: 40) }

    @Test func reshapesAndTranspose() throws {
        #expect(try GradientCheck(op: "Reshape", inputs: [x], constants: [(1, try int64s([4, -1]))]).run() == [])
        #expect(try GradientCheck(op: "Flatten", attributes: ["axis": .int(2)], inputs: [x]).run() == [])
        #expect(try GradientCheck(op: "Unsqueeze", inputs: [x], constants: [(1, try int64s([1, -1]))]).run() == [])
        #expect(try GradientCheck(op: "Squeeze", inputs: [try randomTensor([3, 1, 2], seed: 41)], constants: [(1, try int64s([1]))]).run() == [])
        #expect(try GradientCheck(op: "Transpose", attributes: ["perm": .ints([2, 0, 1])], inputs: [x]).run() == [])
        #expect(try GradientCheck(op: "Expand", inputs: [try randomTensor([3, 1], seed: 42)], constants: [(1, try int64s([2, 3, 4]))]).run() == [])
    }

    @Test func joinsCutsAndIndexing() throws {
        let y = try randomTensor([2, 2, 4], seed: 43)
        #expect(try GradientCheck(op: "Concat", attributes: ["axis": .int(1)], inputs: [x, y]).run() == [])
        for seeded in 0..<2 {
            let split = GradientCheck(op: "Split", attributes: ["axis": .int(2)], inputs: [x], constants: [(1, try int64s([1, 3]))], outputs: 2, seeded: seeded)
            #expect(try split.run() == [])
        }
        let slice = GradientCheck(
            op: "Slice", inputs: [x],
            constants: [(1, try int64s([-1, 1])), (2, try int64s([-100, 4])), (3, try int64s([2, 1])), (4, try int64s([-2, 1]))])
        #expect(try slice.run() == [])
        let gather = GradientCheck(op: "Gather", attributes: ["axis": .int(1)], inputs: [x], constants: [(1, try int64s([2, 0, 2, -1]))])
        #expect(try gather.run() == [])
    }
}

extension GradientCheck {
    func withAttributes(_ attributes: [String: Attribute]) -> GradientCheck {
        var copy = self
        copy.attributes = attributes
        return copy
    }
}

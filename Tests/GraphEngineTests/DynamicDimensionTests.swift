import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Free axes take any extent, fixed ones are held to theirs, and image sizes follow from both.
@Suite struct DynamicDimensionTests {
    /// A model read from a file whose input is declared `[-1, 3, ?, ?]`, as paddle2onnx writes it.
    func paddleStyle() throws -> Executor {
        let data = ONNXBuilder(
            nodes: [.init("Relu", ["x"], ["y"])], inputs: [.init("x", shape: [-1, 3, "?", .blank])],
            outputs: [.init("y", shape: [-1, 3, "?", .blank])]
        ).serialized()
        return try Executor(model: try Model(serializedData: data))
    }

    @Test func freeAxesAcceptAnyExtent() throws {
        let executor = try paddleStyle()
        for shape in [[2, 3, 48, 192], [1, 3, 5, 7]] {
            #expect(try executor.run(["x": try Tensor(zeros: .float32, shape: shape)])["y"]?.shape == shape)
        }
        let text = errorText { try executor.run(["x": try Tensor(zeros: .float32, shape: [2, 4, 48, 192])]) }
        #expect(text == "input 'x': expects shape [?, 3, ?, ?], got [2, 4, 48, 192] (axis 1 must be 3)")
    }

    @Test func imageSizeComesFromTheModelOrTheRequest() throws {
        let free = try paddleStyle()
        #expect(free.fixedImageSize == nil)
        #expect(try free.imageSize(requested: (48, 192)) == (48, 192))
        #expect(errorText { try free.imageSize(requested: nil) }.contains("input 'x': expects [?, 3, ?, ?]: its height is free, so an image size must be given"))

        func model(height: ONNXModel.Dimension, width: ONNXModel.Dimension) throws -> Executor {
            try Executor(model: makeModel(
                [Node(opType: "Relu", inputs: ["x"], outputs: ["y"])],
                inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(3), height, width])], outputs: ["y"]))
        }
        let fixed = try model(height: .fixed(32), width: .fixed(64))
        #expect(fixed.fixedImageSize.map { [$0.height, $0.width] } == [32, 64])
        #expect(try fixed.imageSize(requested: nil) == (32, 64))
        #expect(try fixed.imageSize(requested: (32, 64)) == (32, 64))
        #expect(errorText { try fixed.imageSize(requested: (32, 32)) }.contains("its width is fixed at 64, so the requested 32 does not fit"))

        let halfFixed = try model(height: .fixed(48), width: .symbolic("W"))
        #expect(try halfFixed.imageSize(requested: (48, 100)) == (48, 100))
        #expect(errorText { try halfFixed.imageSize(requested: nil) }.contains("its width is free"))
        #expect(errorText { try halfFixed.imageSize(requested: (0, 5)) }.contains("an image height of 0 is empty"))
    }
}

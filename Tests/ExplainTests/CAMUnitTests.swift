import Explain
import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

@Suite struct CAMUnitTests {
    @Test func tokenGridsAreInferredFromCountAndInputSize() throws {
        #expect(try TokenGrid.infer(tokens: 197, inputHeight: 224, inputWidth: 224) == TokenGrid(prefixTokens: 1, height: 14, width: 14))
        #expect(try TokenGrid.infer(tokens: 198, inputHeight: 224, inputWidth: 224) == TokenGrid(prefixTokens: 2, height: 14, width: 14))
        #expect(try TokenGrid.infer(tokens: 196, inputHeight: 224, inputWidth: 224) == TokenGrid(prefixTokens: 0, height: 14, width: 14))
        #expect(try TokenGrid.infer(tokens: 51, inputHeight: 160, inputWidth: 320) == TokenGrid(prefixTokens: 1, height: 5, width: 10))
        #expect(throws: (any Error).self) { try TokenGrid.infer(tokens: 23, inputHeight: 224, inputWidth: 224) }
    }

    @Test func tokensBecomeChannelFirstGrids() throws {
        // [1, 1 + 2*3, 2]: a class token, then six patch tokens of two channels each.
        let tokens = try Tensor(shape: [1, 7, 2], scalars: (0..<14).map { Float($0) })
        let grid = try TokenGrid(prefixTokens: 1, height: 2, width: 3).spatial(tokens)
        #expect(grid.shape == [1, 2, 2, 3])
        #expect(try grid.scalars(as: Float.self) == [2, 4, 6, 8, 10, 12, 3, 5, 7, 9, 11, 13])
    }

    /// C5: a grid whose token count overflows (from --token-grid) is an error, not a trap.
    @Test func tokenGridsThatCannotExistAreErrors() throws {
        let tokens = try Tensor(zeros: .float32, shape: [1, 7, 2])
        for grid in [
            TokenGrid(prefixTokens: 1, height: 1 << 32, width: 1 << 32), TokenGrid(prefixTokens: .max, height: 1, width: 1),
            TokenGrid(prefixTokens: -1, height: 2, width: 4), TokenGrid(prefixTokens: 7, height: 0, width: 3),
        ] {
            #expect(throws: ExplainError.self) { try grid.tokenCount() }
            #expect(throws: ExplainError.self) { try grid.spatial(tokens) }
        }
        #expect(try TokenGrid(prefixTokens: 1, height: 2, width: 3).tokenCount() == 7)
    }

    @Test func resizeModes() {
        let map: [Double] = [0, 1, 2, 3]  // 2x2
        // Half-pixel bilinear (OpenCV): the corners stay, inner samples interpolate.
        let bilinear = MapResize.bilinear.apply(map, height: 2, width: 2, outHeight: 4, outWidth: 4)
        #expect(bilinear[0] == 0 && bilinear[15] == 3)
        #expect(bilinear[1] == 0.25 && bilinear[5] == 0.75)
        // Aligned corners spread the corners to the output's corners exactly.
        let aligned = MapResize.bilinearAlignCorners.apply(map, height: 2, width: 2, outHeight: 3, outWidth: 3)
        #expect(aligned == [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3])
        #expect(MapResize.nearest.apply(map, height: 2, width: 2, outHeight: 4, outWidth: 4) == [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3])
    }

    @Test func unnormalizedMapsKeepTheirScaleAndGuidedGradCAMMultiplies() throws {
        let model = try Model(contentsOf: Fixtures.url("models/resnet_basic_ts17.onnx"))
        let input = try Tensor(npyAt: Fixtures.url("models/inputs/resnet_basic.npy"))
        let plain = try GradCAMHeatmapGenerator(model: model, targetLayer: "layer4", options: CAMOptions(normalization: .none, upsampling: .nearest))
        let result = try plain.explain(input)
        // Nearest upsampling of the ReLU'd raw 2x2 map: every 32x32 block repeats one raw value.
        let raw = try result.rawMaps[0].scalars(as: Float.self)
        let heat = try result.heatmaps.scalars(as: Float.self)
        #expect(heat[0] == max(raw[0], 0) && heat[63 * 64 + 63] == max(raw[3], 0))
        let single = try plain.generate(try input.sliced(axis: 0, 0..<1), targetClass: result.classes[0])
        #expect(single.shape == [64, 64])

        let guided = try GradCAMHeatmapGenerator(model: model, targetLayer: "layer4", useGuided: true)
        let maps = try guided.generateBatch(input)
        #expect(maps.count == 2 && maps[0].shape == [64, 64, 3])
        let backprop = try guided.guidedBackprop(input, targetClasses: result.classes)
        let heatmaps = try GradCAMHeatmapGenerator(model: model, targetLayer: "layer4").explain(input).heatmaps
        let expected = try guided.guidedGradCAM(guided: backprop, heatmaps: heatmaps)
        #expect(try maps[1].scalars(as: Float.self) == Array(expected.scalars(as: Float.self)[(64 * 64 * 3)...]))
    }

    @Test func layersThatAreNotMapsAreExplained() throws {
        let model = try Model(contentsOf: Fixtures.url("models/resnet_basic_ts17.onnx"))
        let input = try Tensor(npyAt: Fixtures.url("models/inputs/resnet_basic.npy"))
        let text = errorText { try GradCAMHeatmapGenerator(model: model, targetLayer: "fc").explain(input) }
        #expect(text.contains("layer 'fc': tensor 'logits' has shape [2, 10]; CAM needs [N, C, h, w] or [N, h, w, C] maps or [N, tokens, C] tokens"))
        #expect(errorText { try GradCAMHeatmapGenerator(model: model, targetLayer: "layer4").explain(try input.sliced(axis: 1, 0..<1)) }.contains("input"))
    }

    /// Guided backpropagation (an Explain concept, given to the engine as a backward override):
    /// Relu passes a gradient only where its input was positive and the gradient is positive.
    @Test func guidedReluDropsNegativeGradients() throws {
        let x = try Tensor(shape: [4], scalars: [Float(1), -1, 2, 3])
        func relu(_ type: DType) -> Model {
            Model(
                opsets: ["": 17],
                graph: Graph(
                    nodes: [Node(opType: "Relu", inputs: ["x"], outputs: ["y"])], inputs: [ValueInfo(name: "x", elementType: type)],
                    outputs: [ValueInfo(name: "y", elementType: type)]))
        }
        let seed = try Tensor(shape: [4], scalars: [Float(1), 1, -1, 2])
        let executor = try Executor(model: relu(.float32))
        let plain = try executor.gradients(["x": x], of: .custom { _ in seed }, wrt: ["x"])
        let guided = try executor.gradients(["x": x], of: .custom { _ in seed }, wrt: ["x"], guided: true)
        #expect(try plain.gradients["x"]?.scalars(as: Float.self) == [1, 0, -1, 2])
        #expect(try guided.gradients["x"]?.scalars(as: Float.self) == [1, 0, 0, 2])
        let half = try Executor(model: relu(.float16)).gradients(["x": x.converted(to: .float16)], of: .custom { _ in try seed.converted(to: .float16) }, wrt: ["x"], guided: true)
        #expect(try half.gradients["x"]?.converted(to: .float32).scalars(as: Float.self) == [1, 0, 0, 2])
    }
}

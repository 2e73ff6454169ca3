import Explain
import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// GradCAM on the tf2onnx and paddle2onnx fixtures against the framework's own autodiff
/// (`tf.GradientTape`, `paddle.grad`) at the input of the graph's last global average pool.
@Suite struct ExporterCAMTests {
    /// Raw maps, relative to their largest magnitude: the framework computes activations and
    /// gradients in float32 in another order (oneDNN, Paddle's kernels), and the map is a
    /// channel sum of their products; 1e-4 as for the pytorch-grad-cam goldens (CAMGoldenTests).
    static let rawTolerance = 1e-4

    /// The fixtures whose CAM layer is laid out `[N, C, h, w]`; Keras's stays channels-last
    /// (see ``PendingExporterTests``).
    static var channelsFirst: [ExporterManifest.Entry] {
        (ExporterManifest.committed?.models ?? []).filter { $0.cam.layout == "NCHW" && $0.input_layout == "NCHW" }
    }

    @Test(arguments: channelsFirst)
    func gradCAMMatchesFramework(_ entry: ExporterManifest.Entry) throws {
        let model = try Model(contentsOf: entry.modelURL)
        let input = try Tensor(npyAt: Fixtures.url("exporters/\(entry.input)"))
        let result = try GradCAMHeatmapGenerator(model: model, targetLayer: entry.cam.layer)
            .explain(input, targetClasses: entry.cam.classes)
        let expected = try Tensor(npyAt: Fixtures.url("exporters/\(entry.cam.raw)"))
        let comparison = try TensorComparison(result.rawMaps[0].converted(to: .float32), expected)
        #expect(comparison.sameShape, "\(entry.name): \(result.rawMaps[0].shape) vs \(expected.shape)")
        #expect(comparison.relativeToLargest <= Self.rawTolerance, "\(entry.name) raw map: \(comparison)")
        try PendingExporterTests.expectUsableHeatmaps(result.heatmaps, input: input, layout: entry.input_layout, entry.name)
    }
}

/// Checks that needed more than ops (issue 11's layer-suggestion and channels-last work):
/// - `suggestedLayerWorks`: these graphs have no PyTorch module scopes and leave H and W
///   free; `inspect` suggests the map the head pools, named so `--layer` accepts it.
/// - `channelsLastGradCAM`: tf2onnx keeps Keras's NHWC input and NHWC feature maps; GradCAM
///   reads both channels-last, inferred from the graph.
@Suite struct PendingExporterTests {
    /// `[N, H, W]` at the input's spatial size, finite, and not constant in any sample.
    static func expectUsableHeatmaps(_ heatmaps: Tensor, input: Tensor, layout: String, _ label: String) throws {
        let (height, width) = layout == "NHWC" ? (input.shape[1], input.shape[2]) : (input.shape[2], input.shape[3])
        #expect(heatmaps.shape == [input.shape[0], height, width], "\(label): heatmaps \(heatmaps.shape)")
        let values = try heatmaps.doubles()
        let finite = values.allSatisfy { $0.isFinite }
        #expect(finite, "\(label): non-finite heatmap")
        let plane = max(height * width, 1)
        for sample in 0..<heatmaps.shape[0] {
            let slice = values[sample * plane..<min((sample + 1) * plane, values.count)]
            #expect((slice.max() ?? 0) - (slice.min() ?? 0) > 1e-6, "\(label) sample \(sample): constant heatmap")
        }
    }

    @Test(arguments: ExporterManifest.committed?.models ?? [])
    func suggestedLayerWorks(_ entry: ExporterManifest.Entry) throws {
        let model = try Model(contentsOf: entry.modelURL)
        let candidates = ModelInspection(model: model).candidates
        let suggestion = try #require(candidates.first { $0.recommended }, "no suggestion")
        let shape = try #require(suggestion.shape)
        #expect(shape.count >= 3 && shape.dropFirst().filter { $0 >= 2 }.count >= 2, "\(suggestion.name): \(shape)")
        let input = try Tensor(npyAt: Fixtures.url("exporters/\(entry.input)"))
        let result = try GradCAMHeatmapGenerator(model: model, targetLayer: suggestion.name).explain(input)
        try Self.expectUsableHeatmaps(result.heatmaps, input: input, layout: entry.input_layout, entry.name)
    }

    @Test(arguments: (ExporterManifest.committed?.models ?? []).filter { $0.cam.layout == "NHWC" })
    func channelsLastGradCAM(_ entry: ExporterManifest.Entry) throws {
        let model = try Model(contentsOf: entry.modelURL)
        let input = try Tensor(npyAt: Fixtures.url("exporters/\(entry.input)"))
        let result = try GradCAMHeatmapGenerator(model: model, targetLayer: entry.cam.layer)
            .explain(input, targetClasses: entry.cam.classes)
        let expected = try Tensor(npyAt: Fixtures.url("exporters/\(entry.cam.raw)"))
        #expect(result.layerLayouts == [.channelsLast])
        let comparison = try TensorComparison(result.rawMaps[0].converted(to: .float32), expected)
        #expect(comparison.sameShape && comparison.relativeToLargest <= ExporterCAMTests.rawTolerance, "\(entry.name): \(comparison)")
        try Self.expectUsableHeatmaps(result.heatmaps, input: input, layout: entry.input_layout, entry.name)
    }
}

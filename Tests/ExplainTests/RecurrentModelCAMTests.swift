import Explain
import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// GradCAM on a CRNN-style text-line classifier (conv features, then a 2-layer bidirectional
/// LSTM over the columns) against pytorch-grad-cam on the PyTorch model both exports came from:
/// the gradient at the conv layer arrives through both LSTM layers' backpropagation through time.
@Suite struct RecurrentModelCAMTests {
    struct Export: Decodable {
        struct CAM: Decodable {
            let layer: String?
            let heatmap: String?
        }

        let name, file, input: String
        let classes: [Int]
        let gradcam: CAM
    }

    struct Manifest: Decodable {
        let models: [Export]
    }

    static let exports: [Export] = {
        guard let data = try? Data(contentsOf: Fixtures.url("recurrent/manifest.json")),
            let manifest = try? JSONDecoder().decode(Manifest.self, from: data)
        else { return [] }
        return manifest.models.filter { $0.gradcam.heatmap != nil }
    }()

    /// Heatmaps in [0, 1): the tolerance of CAMGoldenTests (1e-4 absolute), whose reasons hold
    /// here too; the largest difference measured on these two exports is 2.7e-7.
    @Test func gradCAMThroughLSTMMatchesPytorchGradCAM() throws {
        #expect(Self.exports.count == 2)
        for export in Self.exports {
            let model = try Model(contentsOf: Fixtures.url("recurrent/\(export.file)"))
            let layer = try #require(export.gradcam.layer)
            let gradcam = try GradCAMHeatmapGenerator(model: model, targetLayer: layer)
            let input = try Tensor(npyAt: Fixtures.url("recurrent/\(export.input)"))
            let heatmaps = try gradcam.explain(input, targetClasses: export.classes).heatmaps
            let expected = try Tensor(npyAt: Fixtures.url("recurrent/\(try #require(export.gradcam.heatmap))"))
            let comparison = try TensorComparison(heatmaps, expected)
            #expect(comparison.sameShape && comparison.maxAbsoluteDifference <= 1e-4, "\(export.name): \(comparison)")
        }
    }
}

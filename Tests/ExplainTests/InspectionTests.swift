@testable import Explain
import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// What `inspect` tells a user: parameters, missing ops, and a layer `gradcam --layer` can use.
@Suite struct InspectionTests {
    /// Every fixture model's suggestion is a name the `--layer` resolver maps to the suggested
    /// tensor, a map of at least 2×2 (or a token sequence), and gives a heatmap that is not constant.
    @Test(arguments: FixtureManifest.committed?.models ?? [])
    func suggestionIsAUsableLayer(_ entry: FixtureManifest.Entry) throws {
        let model = try Model(contentsOf: Fixtures.url("models/\(entry.file)"))
        let report = ModelInspection(model: model)
        let suggested = try #require(report.suggested, "\(entry.name): no suggestion; \(report.shapeNote ?? "")")
        let resolver = LayerResolver(model: model)
        for candidate in report.candidates {
            for name in candidate.names { #expect(try resolver.resolve(name).tensor == candidate.tensor, "\(entry.name): \(name)") }
        }
        let shape = try #require(suggested.shape)
        switch suggested.kind {
        case .convolutional: #expect(shape.count == 4 && shape[2] >= 2 && shape[3] >= 2, "\(entry.name): \(shape)")
        case .tokens: #expect(shape.count == 3 && shape[1] > 1, "\(entry.name): \(shape)")
        case .unknown: Issue.record("\(entry.name): suggested \(suggested.name) of unknown kind")
        }

        let input = try Tensor(npyAt: Fixtures.url("models/\(entry.input)"))
        let heatmaps = try GradCAMHeatmapGenerator(model: model, targetLayer: suggested.name).explain(input).heatmaps
        let values = try heatmaps.scalars(as: Float.self)
        let perImage = values.count / input.shape[0]
        for image in 0..<input.shape[0] {
            let map = values[image * perImage..<(image + 1) * perImage]
            #expect((map.max() ?? 0) > (map.min() ?? 0), "\(entry.name): image \(image)'s heatmap at \(suggested.name) is constant")
        }
    }

    /// torchvision's ConvNeXt ends in a channels-last LayerNorm on the pooled `[1, 1, 1, C]`
    /// vector (`classifier.0`); the suggestion is the last stage's map instead.
    @Test func convNeXtSuggestsTheLastStageNotThePooledNorm() throws {
        for file in ["convnext_ts13", "convnext_ts17", "convnext_dyn18", "convnext_dyn25"] {
            let report = ModelInspection(model: try Model(contentsOf: Fixtures.url("models/\(file).onnx")))
            #expect(report.suggested?.name == "features.3", "\(file)")
            #expect(report.suggested?.shape == [1, 16, 4, 4])
            #expect(!report.candidates.contains { $0.names.contains("classifier.0") })
        }
    }

    /// DenseNet's last map is `F.relu` outside any module: suggested by the node name the resolver accepts.
    @Test func denseNetSuggestsItsFinalReluByNodeName() throws {
        let torchScript = ModelInspection(model: try Model(contentsOf: Fixtures.url("models/densenet_ts17.onnx")))
        #expect(torchScript.suggested?.names == ["/Relu"])
        #expect(torchScript.suggested?.tensor == "/Relu_output_0")
        let dynamo = ModelInspection(model: try Model(contentsOf: Fixtures.url("models/densenet_dyn18.onnx")))
        #expect(dynamo.suggested?.tensor == "relu_10")
    }

    /// Channels-last and pooled tensors are not maps; the input's size and aspect tell them apart.
    @Test func layoutsAreJudgedAgainstTheInputImage() {
        let image = (height: 224, width: 224)
        typealias Kind = ModelInspection.LayerCandidate.Kind
        #expect(ModelInspection.kind(of: [1, 2048, 7, 7], image: image) == Kind.convolutional)
        #expect(ModelInspection.kind(of: [1, 768, 1, 1], image: image) == Kind.unknown)  // pooled
        #expect(ModelInspection.kind(of: [1, 1, 1, 768], image: image) == Kind.unknown)  // pooled, channels-last
        #expect(ModelInspection.kind(of: [1, 7, 7, 768], image: image) == Kind.unknown)  // wider than the image
        #expect(ModelInspection.kind(of: [1, 56, 56, 96], image: image) == Kind.unknown)  // Swin stage, channels-last
        #expect(ModelInspection.kind(of: [1, 64, 6, 24], image: (48, 192)) == Kind.convolutional)  // a text-line CNN
        #expect(ModelInspection.kind(of: [1, 197, 768], image: image) == Kind.tokens)
    }

    /// Weights in `Constant` nodes (paddle2onnx) count as parameters; missing ops are listed once.
    @Test func constantNodeWeightsAndMissingOps() throws {
        let w = try Tensor(shape: [4, 3, 1, 1], scalars: (0..<12).map { Float($0) })
        let model = Model(
            opsets: ["": 13],
            graph: Graph(
                nodes: [
                    Node(opType: "Constant", inputs: [], outputs: ["w"], attributes: ["value": .tensor(w)]),
                    Node(name: "/conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"]),
                    Node(name: "/a/HardSwish", opType: "FooSwish", inputs: ["c"], outputs: ["h"]),
                    Node(name: "/b/HardSwish", opType: "FooSwish", inputs: ["h"], outputs: ["y"]),
                ],
                inputs: [ValueInfo(name: "x", shape: [.unknown, .fixed(3), .unknown, .unknown])], outputs: [ValueInfo(name: "y")]))
        let report = ModelInspection(model: model)
        #expect(report.parameterCount == 12)
        #expect(report.unsupported.map(\.opType) == ["FooSwish"])
        #expect(report.unsupported.first?.nodes == ["/a/HardSwish", "/b/HardSwish"])
        #expect(report.shapeNote == "shapes unavailable until the unsupported ops above are implemented")
        #expect(report.suggested == nil && report.candidates.isEmpty)
    }

    /// A model that leaves its size free gets shapes (and a suggestion) at a probe size.
    @Test func freeSizeModelsAreProbed() throws {
        let w = try Tensor(shape: [4, 3, 3, 3], scalars: (0..<108).map { Float($0 % 7) - 3 })
        let model = Model(
            opsets: ["": 13],
            graph: Graph(
                nodes: [
                    Node(name: "/features/features.0/Conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"], attributes: ["strides": .ints([2, 2])]),
                    Node(name: "/features/features.1/Relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                    Node(name: "/pool/GlobalAveragePool", opType: "GlobalAveragePool", inputs: ["r"], outputs: ["y"]),
                ],
                initializers: ["w": w],
                inputs: [ValueInfo(name: "x", shape: [.unknown, .fixed(3), .unknown, .unknown])], outputs: [ValueInfo(name: "y")]))
        let probed = ModelInspection(model: model)
        #expect(probed.probedImageSize.map { [$0.height, $0.width] } == [224, 224])
        #expect(probed.suggested?.name == "features.1")
        #expect(probed.suggested?.shape == [1, 4, 111, 111])
        let sized = ModelInspection(model: model, imageSize: (48, 192))
        #expect(sized.suggested?.shape == [1, 4, 23, 95])
    }
}

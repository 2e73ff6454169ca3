@testable import Explain
import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Channels-first, channels-last and token layers and inputs: what the graph and the shape say,
/// overrides, and CAM on channels-last inputs.
@Suite struct LayerLayoutTests {
    @Test func inputLayoutFollowsTheDeclaredShape() {
        func layout(_ dims: [ONNXModel.Dimension]) -> ImageLayout { ImageLayout.declared(by: dims) }
        #expect(layout([.symbolic("N"), .fixed(3), .fixed(224), .fixed(224)]) == .nchw)
        #expect(layout([.symbolic("unk__347"), .fixed(64), .fixed(64), .fixed(3)]) == .nhwc)  // Keras via tf2onnx
        #expect(layout([.unknown, .unknown, .unknown, .fixed(3)]) == .nhwc)
        #expect(layout([.unknown, .fixed(1), .fixed(28), .fixed(28)]) == .nchw)  // grayscale
        #expect(layout([.unknown, .fixed(28), .fixed(28), .fixed(1)]) == .nhwc)
        #expect(layout([.unknown, .fixed(3), .fixed(8), .fixed(3)]) == .nchw)  // ambiguous: the second axis wins
        #expect(layout([.unknown, .unknown, .unknown, .unknown]) == .nchw)
        #expect(layout([.unknown, .fixed(3), .fixed(8)]) == .nchw)
    }

    /// A graph `x → … → r → …` around the tensor `r`, to ask what the graph says about it.
    func evidence(_ nodes: [Node], initializers: [String: Tensor] = [:]) -> ImageLayout? {
        let model = Model(
            opsets: ["": 17],
            graph: Graph(nodes: nodes, initializers: initializers, inputs: [ValueInfo(name: "x")], outputs: [ValueInfo(name: "y")]))
        return LayerLayouts(model: model).evidence(for: "r")
    }

    @Test func theGraphSaysWhichAxisHoldsChannels() throws {
        let weight = try Tensor(shape: [4, 8], scalars: [Float](repeating: 1, count: 32))
        func transpose(_ input: String, _ perm: [Int], _ output: String) -> Node {
            Node(opType: "Transpose", inputs: [input], outputs: [output], attributes: ["perm": .ints(perm)])
        }
        // A convolution two elementwise ops away.
        #expect(evidence([Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"]), Node(opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(opType: "Flatten", inputs: ["r"], outputs: ["y"])]) == .nchw)
        // tf2onnx: NHWC between Transposes, pooled by a mean over axes 1 and 2.
        #expect(evidence([transpose("x", [0, 2, 3, 1], "t"), Node(opType: "Relu", inputs: ["t"], outputs: ["r"]),
            Node(opType: "ReduceMean", inputs: ["r"], outputs: ["y"], attributes: ["axes": .ints([1, 2]), "keepdims": .int(0)])]) == .nhwc)
        // Swin and ConvNeXt: a LayerNorm, or a Linear, over the last axis.
        #expect(evidence([Node(opType: "Add", inputs: ["x", "x"], outputs: ["r"]),
            Node(opType: "LayerNormalization", inputs: ["r", "g"], outputs: ["y"], attributes: ["axis": .int(-1)])]) == .nhwc)
        #expect(evidence([Node(opType: "Add", inputs: ["x", "x"], outputs: ["r"]), Node(opType: "MatMul", inputs: ["r", "w"], outputs: ["y"])],
            initializers: ["w": weight]) == .nhwc)
        // A CRNN reads an NCHW map's columns with Transpose [0, 3, 1, 2]: the convolution outweighs the nearer Transpose.
        #expect(evidence([Node(opType: "Conv", inputs: ["x", "w"], outputs: ["c"]), Node(opType: "Relu", inputs: ["c"], outputs: ["r"]),
            transpose("r", [0, 3, 1, 2], "y")]) == .nchw)
        // Only a Transpose: weak evidence still counts.
        #expect(evidence([transpose("x", [0, 2, 3, 1], "r"), Node(opType: "Reshape", inputs: ["r", "s"], outputs: ["y"])]) == .nhwc)
        // Evidence that disagrees at the same distance is none; so is no evidence.
        #expect(evidence([Node(opType: "Conv", inputs: ["x", "w"], outputs: ["r"]),
            Node(opType: "LayerNormalization", inputs: ["r", "g"], outputs: ["y"])]) == nil)
        #expect(evidence([Node(opType: "Reshape", inputs: ["x", "s"], outputs: ["r"]), Node(opType: "Relu", inputs: ["r"], outputs: ["y"])]) == nil)
    }

    /// Every Swin export's stages and final norm are channels-last by the graph alone; ResNet's
    /// stages and the Keras model's CAM layer are what they are too.
    @Test func fixtureLayersHaveTheirLayoutsByTheGraph() throws {
        for name in ["swin_ts13", "swin_ts17", "swin_dyn18", "swin_dyn25"] {
            let model = try Model(contentsOf: Fixtures.url("models/\(name).onnx"))
            let resolver = LayerResolver(model: model)
            let layouts = LayerLayouts(model: model)
            #expect(layouts.inputLayout == .nchw)
            for layer in ["features.1", "features.3", "norm"] {
                #expect(layouts.evidence(for: try resolver.resolve(layer).tensor) == .nhwc, "\(name) \(layer)")
            }
        }
        let resnet = try Model(contentsOf: Fixtures.url("models/resnet_basic_dyn18.onnx"))
        #expect(LayerLayouts(model: resnet).evidence(for: try LayerResolver(model: resnet).resolve("layer4").tensor) == .nchw)
        let keras = try Model(contentsOf: Fixtures.url("exporters/keras_mobilenetv3_op15.onnx"))
        let layouts = LayerLayouts(model: keras)
        #expect(layouts.inputLayout == .nhwc)
        #expect(layouts.evidence(for: "functional_1/activation_17_1/mul:0") == .nhwc)
    }

    @Test func anOverrideReadsTheLayerAsTold() throws {
        let model = try Model(contentsOf: Fixtures.url("models/swin_ts17.onnx"))
        let input = try Tensor(npyAt: Fixtures.url("models/inputs/swin.npy"))
        let inferred = try GradCAMHeatmapGenerator(model: model, targetLayer: "norm").explain(input)
        #expect(inferred.layerLayouts == [.channelsLast])
        #expect(inferred.rawMaps[0].shape == [2, 4, 4])
        // [2, 4, 4, 32] read as [N, C, h, w]: 4 channels over a 4x32 map.
        let forced = try GradCAMHeatmapGenerator(model: model, targetLayer: "norm", options: CAMOptions(layerLayout: .channelsFirst)).explain(input)
        #expect(forced.layerLayouts == [.channelsFirst])
        #expect(forced.rawMaps[0].shape == [2, 4, 32])
        let tokens = errorText {
            try GradCAMHeatmapGenerator(model: model, targetLayer: "norm", options: CAMOptions(layerLayout: .tokens(nil))).explain(input)
        }
        #expect(tokens.contains("layer 'norm': a token layer must be [N, tokens, C], got shape [2, 4, 4, 32]"), "\(tokens)")
        let deit = try Model(contentsOf: Fixtures.url("models/deit_ts17.onnx"))
        let deitInput = try Tensor(npyAt: Fixtures.url("models/inputs/deit.npy"))
        let notMaps = errorText {
            try GradCAMHeatmapGenerator(model: deit, targetLayer: "blocks.1.norm1", options: CAMOptions(layerLayout: .channelsLast)).explain(deitInput)
        }
        #expect(notMaps.contains("a nhwc layer must be 4-D, got shape [2, 17, 32]"), "\(notMaps)")
    }

    /// A layer's pooled features (what `embed` and the audit's detectors read) average its
    /// positions whatever its layout: Swin's channels-last norm pooled equals the head's input,
    /// which onnxruntime computed through the model's own Transpose and GlobalAveragePool.
    @Test func channelsLastMapsPoolOverTheirPositions() throws {
        let model = try Model(contentsOf: Fixtures.url("models/swin_ts17.onnx"))
        let norm = try Tensor(npyAt: Fixtures.url("models/swin_ts17/_norm_LayerNormalization_output_0.npy"))
        let pooled = try Tensor(npyAt: Fixtures.url("models/swin_ts17/_flatten_Flatten_output_0.npy"))
        let map = try LayerLayouts(model: model).channelsFirstMap(norm, of: "/norm/LayerNormalization_output_0", image: (32, 32))
        #expect(map.shape == [2, 32, 4, 4])
        let (channels, plane) = (32, 16)
        let values = try map.doubles()
        let means = (0..<2 * channels).map { row in values[row * plane..<(row + 1) * plane].reduce(0, +) / Double(plane) }
        let comparison = try TensorComparison(Tensor(shape: [2, 32], scalars: means.map { Float($0) }), pooled)
        // Sixteen float32 values summed in another order than onnxruntime's: a few ulp.
        #expect(comparison.relativeToLargest <= 1e-6, "\(comparison)")
    }

    /// A channels-last copy of a model (its input transposed to NCHW first) explains NHWC images
    /// exactly as the original explains the same images NCHW: every method, ScoreCAM's masked
    /// inputs, augmentation smoothing's flips, and guided backpropagation's input gradient.
    @Test(arguments: ["resnet_basic_ts17", "deit_dyn18"])
    func channelsLastInputsExplainLikeChannelsFirst(_ name: String) throws {
        let model = try Model(contentsOf: Fixtures.url("models/\(name).onnx"))
        let input = try Tensor(npyAt: Fixtures.url("models/inputs/\(name.split(separator: "_").dropLast().joined(separator: "_")).npy"))
        let twin = try Self.channelsLastTwin(model)
        let nhwc = try input.transposed([0, 2, 3, 1])
        let layer = name.hasPrefix("deit") ? "blocks.1.norm1" : "layer4"
        for method in [CAMMethod.gradCAM, .scoreCAM, .gradCAMPlusPlus] {
            for options in [CAMOptions(), CAMOptions(augSmooth: true)] where method == .gradCAM || !options.augSmooth {
                let original = try GradCAMHeatmapGenerator(model: model, targetLayer: layer, method: method, options: options)
                let channelsLast = try GradCAMHeatmapGenerator(model: twin, targetLayer: layer, method: method, options: options)
                #expect(channelsLast.inputLayout == .nhwc)
                let expected = try original.explain(input)
                let result = try channelsLast.explain(nhwc)
                // The same graph runs on the same values after the input Transpose: bit for bit.
                #expect(try result.heatmaps.scalars(as: Float.self) == expected.heatmaps.scalars(as: Float.self), "\(name) \(method)")
                #expect(result.classes == expected.classes)
            }
        }
        let guided = try GradCAMHeatmapGenerator(model: twin, targetLayer: layer).guidedBackprop(nhwc)
        let expectedGuided = try GradCAMHeatmapGenerator(model: model, targetLayer: layer).guidedBackprop(input)
        #expect(try guided.scalars(as: Float.self) == expectedGuided.scalars(as: Float.self))
        let single = try GradCAMHeatmapGenerator(model: twin, targetLayer: layer).generate(nhwc.sliced(axis: 0, 0..<1).reshaped(Array(nhwc.shape.dropFirst())))
        #expect(single.shape == [input.shape[2], input.shape[3]])
    }

    /// `model` taking `[N, H, W, 3]` images: a Transpose to NCHW in front of the original graph.
    static func channelsLastTwin(_ model: Model) throws -> Model {
        var graph = model.graph
        let input = try #require(graph.inputs.first)
        let dims = try #require(input.shape)
        let renamed = input.name + "_nhwc"
        graph.nodes.insert(
            Node(name: "to_nchw", opType: "Transpose", inputs: [renamed], outputs: [input.name], attributes: ["perm": .ints([0, 3, 1, 2])]),
            at: 0)
        graph.inputs = [ValueInfo(name: renamed, elementType: input.elementType, shape: [dims[0], dims[2], dims[3], dims[1]])]
        var twin = model
        twin.graph = graph
        return twin
    }
}

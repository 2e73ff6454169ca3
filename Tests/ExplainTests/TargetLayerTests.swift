import Explain
import Foundation
import ONNXModel
import TestSupport
import Testing

@Suite struct TargetLayerTests {
    func resolver(_ fixture: String) throws -> LayerResolver {
        LayerResolver(model: try Model(contentsOf: Fixtures.url("models/\(fixture).onnx")))
    }

    @Test func modulePathsResolveToTheSameLayerForBothExporters() throws {
        let torchScript = try resolver("resnet_basic_ts17")
        let dynamo = try resolver("resnet_basic_dyn18")
        #expect(try torchScript.resolve("layer4").tensor == "/layer4/layer4.0/relu_1/Relu_output_0")
        #expect(try dynamo.resolve("layer4").tensor == "relu_8")
        #expect(try torchScript.resolve("layer4[-1]").modulePath == "layer4.0")
        #expect(try dynamo.resolve("model.layer4[0]").tensor == "relu_8")
        #expect(try torchScript.resolve("layer3").tensor == "/layer3/layer3.0/relu_1/Relu_output_0")
    }

    @Test func transformerBlocksByPathIndexAndSuffix() throws {
        let vit = try resolver("vit_ts17")
        #expect(try vit.resolve("encoder.layers.encoder_layer_1.ln_1").tensor == "/encoder/layers/encoder_layer_1/ln_1/LayerNormalization_output_0")
        #expect(try vit.resolve("encoder.layers[-1].ln_1").tensor == "/encoder/layers/encoder_layer_1/ln_1/LayerNormalization_output_0")
        let deit = try resolver("deit_dyn25")
        #expect(try deit.resolve("blocks[-1].norm1").modulePath == "blocks.1.norm1")
        #expect(try deit.resolve("blocks.1.norm1").tensor == deit.resolve("blocks[1].norm1").tensor)
    }

    @Test func tensorAndNodeNamesWork() throws {
        let r = try resolver("vgg_ts17")
        #expect(try r.resolve("/features/features.14/Relu_output_0").modulePath == nil)
        #expect(try r.resolve("/features/features.14/Relu").tensor == "/features/features.14/Relu_output_0")
        #expect(try r.resolve("features.14").tensor == "/features/features.14/Relu_output_0")
    }

    @Test func unknownAndAmbiguousNamesListCandidates() throws {
        let deit = try resolver("deit_dyn18")
        #expect(errorText { try deit.resolve("norm1") }.contains("ambiguous; it could be blocks.0.norm1, blocks.1.norm1"))
        let unknown = errorText { try deit.resolve("blocks.1.norm3") }
        #expect(unknown.contains("no layer named 'blocks.1.norm3'") && unknown.contains("blocks.1.norm1"))
        #expect(!unknown.contains("shortcut-detect"))  // the CLI adds its hint
        #expect(errorText { try deit.resolve("blocks[7]") }.contains("no layer named 'blocks[7]'"))
    }
}

import Explain
import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

extension QuantizationManifest.QDQModel: CustomTestStringConvertible {
    public var testDescription: String { name }
}

/// A ResNet-style net quantized by onnxruntime's `quantize_static` (QDQ format, per tensor and
/// per channel): forward against onnxruntime, and GradCAM through its Q/DQ pairs.
@Suite struct QuantizedModelTests {
    static let models = QuantizationManifest.committed?.models ?? []

    static func load(_ entry: QuantizationManifest.QDQModel) throws -> (Model, Tensor) {
        let model = try Model(contentsOf: Fixtures.url("quantization/\(entry.file)"))
        return (model, try Tensor(npyAt: Fixtures.url("quantization/\(entry.input)")))
    }

    /// The logits are multiples of one quantum (`logits_scale`, 0.0029 here). Each Q/DQ pair
    /// rounds a float32 sum that we accumulate in another order than onnxruntime; where that sum
    /// lies within ~1e-7 of a rounding boundary, the integer flips by one and the difference
    /// travels on. Measured: identical on these inputs. Allowed: one quantum per logit, the
    /// largest a single flip at the last quantizer can cause (flips further up are damped by
    /// the weights and the average pool before they reach the logits of these small nets).
    @Test(arguments: models)
    func forwardMatchesOnnxruntime(_ entry: QuantizationManifest.QDQModel) throws {
        let (model, input) = try Self.load(entry)
        let logits = try #require(try Executor(model: model).run(["input": input])["logits"])
        let expected = try Tensor(npyAt: Fixtures.url("quantization/\(entry.logits)"))
        let comparison = try TensorComparison(logits, expected, absolute: entry.logitsScale * 1.001)
        #expect(comparison.mismatches == 0, "\(entry.name): \(comparison)")
    }

    /// GradCAM at `layer2` and `layer1` (module paths; the layer is the DequantizeLinear after
    /// each block) flows through every Q/DQ pair between it and the logits: finite, not constant.
    @Test(arguments: models)
    func gradCAMRunsThroughQuantizedLayers(_ entry: QuantizationManifest.QDQModel) throws {
        let (model, input) = try Self.load(entry)
        for layer in ["layer2", "layer1"] {
            let gradcam = try GradCAMHeatmapGenerator(model: model, targetLayer: layer)
            #expect(gradcam.layers[0].tensor.hasSuffix("_DequantizeLinear_Output"), "\(gradcam.layers[0].tensor)")
            let result = try gradcam.explain(input)
            let heatmaps = try result.heatmaps.doubles()
            #expect(heatmaps.allSatisfy { $0.isFinite }, "\(entry.name) \(layer)")
            let count = heatmaps.count / input.shape[0]
            for sample in 0..<input.shape[0] {
                let map = heatmaps[sample * count..<(sample + 1) * count]
                #expect((map.max() ?? 0) - (map.min() ?? 0) > 0.5, "\(entry.name) \(layer) sample \(sample) is flat")
            }
        }
    }

    /// The input gradient through the whole quantized net is finite and reaches every sample.
    @Test(arguments: models)
    func inputGradientReachesTheInput(_ entry: QuantizationManifest.QDQModel) throws {
        let (model, input) = try Self.load(entry)
        let result = try Executor(model: model).gradients(["input": input], of: .logit(classes: nil), wrt: ["input"])
        let gradient = try #require(result.gradients["input"]).doubles()
        #expect(gradient.allSatisfy { $0.isFinite })
        let count = gradient.count / input.shape[0]
        for sample in 0..<input.shape[0] {
            #expect(gradient[sample * count..<(sample + 1) * count].contains { $0 != 0 }, "\(entry.name) sample \(sample)")
        }
    }
}

import Explain
import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

extension CAMExport: CustomTestStringConvertible {
    public var testDescription: String { fixture }
}

/// Whole-model gradients of the fixtures against PyTorch autograd, at the input and at the CAM
/// layer, for both exporters.
@Suite struct ModelGradientTests {
    /// Relative to the largest expected magnitude. Both sides are float32; the backward pass
    /// sums in another order than PyTorch (col2im, BLAS transposes) through every layer. The
    /// largest deviation measured on these fixtures is 9.5e-7 (ViT layer gradients); 1e-5
    /// leaves ~10x headroom.
    static let tolerance = 1e-5

    @Test func manifestIsPresent() { #expect((CAMManifest.committed?.models.count ?? 0) == 5) }

    @Test(arguments: CAMManifest.exports)
    func matchesPyTorchAutograd(_ export: CAMExport) throws {
        let model = try Model(contentsOf: export.modelURL)
        let executor = try Executor(model: model)
        let layer = try LayerResolver(model: model).resolve(export.entry.layer)
        let input = try Tensor(npyAt: export.golden(export.entry.input))
        let inputName = try #require(executor.inputs.first?.name)
        let result = try executor.gradients(
            [inputName: input], of: .logit(classes: export.entry.classes), wrt: [layer.tensor, inputName])
        let checks: [(String, Tensor?)] = [
            ("activation", result.values[layer.tensor]), ("layer", result.gradients[layer.tensor]),
            ("input", result.gradients[inputName]),
        ]
        for (key, actual) in checks {
            let expected = try Tensor(npyAt: export.golden(try #require(export.entry.gradients[key])))
            let comparison = try TensorComparison(try #require(actual), expected)
            #expect(comparison.sameShape && comparison.relativeToLargest <= Self.tolerance, "\(export.fixture) \(key): \(comparison)")
        }
        let softmax = try executor.gradients([inputName: input], of: .probability(classes: export.entry.classes), wrt: [inputName])
        let expected = try Tensor(npyAt: export.golden(try #require(export.entry.gradients["input_softmax"])))
        let comparison = try TensorComparison(try #require(softmax.gradients[inputName]), expected)
        #expect(comparison.sameShape && comparison.relativeToLargest <= Self.tolerance, "\(export.fixture) softmax input: \(comparison)")
    }
}

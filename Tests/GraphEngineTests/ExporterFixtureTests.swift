import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Models from non-torch exporters (tf2onnx, paddle2onnx) against onnxruntime: the logits and the
/// CAM layer's tensor, with the exporters' own patterns (NHWC Transposes, weights in Constant
/// nodes, `DynamicDimension`, `unk__N`, `-1` and unset dims, HardSigmoid/HardSwish, Resize-11).
@Suite struct ExporterFixtureTests {
    /// Relative to the largest expected magnitude, as in ``FixtureGoldenTests``: our float32 sums
    /// run in another order than onnxruntime's, a few ulp per layer. (The frameworks themselves
    /// agree with onnxruntime to 3e-7 on the logits and 6e-7 on the CAM layer: manifest.json.)
    static let tolerance = 1e-5

    @Test func manifestIsPresent() {
        let names = Set(ExporterManifest.committed?.models.map(\.framework) ?? [])
        #expect(names == ["keras", "paddle"])
    }

    @Test(arguments: ExporterManifest.committed?.models ?? [])
    func matchesOnnxRuntime(_ entry: ExporterManifest.Entry) throws {
        let executor = try Executor(model: Model(contentsOf: entry.modelURL))
        let input = try Tensor(npyAt: Fixtures.url("exporters/\(entry.input)"))
        let inputName = try #require(executor.inputs.first?.name)
        let results = try executor.run([inputName: input], fetch: entry.outputs.map(\.tensor))
        for output in entry.outputs {
            let expected = try Tensor(npyAt: Fixtures.url("exporters/\(output.file)"))
            let actual = try #require(results[output.tensor])
            let comparison = try TensorComparison(actual, expected)
            #expect(comparison.sameShape, "\(entry.name) \(output.tensor): \(actual.shape) vs \(expected.shape)")
            #expect(comparison.relativeToLargest <= Self.tolerance, "\(entry.name) \(output.tensor): \(comparison)")
        }
    }

    /// A batch of one and of three run through the declared-dynamic dims as well (the fixture's
    /// own input has two samples); each sample's logits equal its row of the batch-2 golden.
    @Test(arguments: ExporterManifest.committed?.models ?? [])
    func otherBatchSizes(_ entry: ExporterManifest.Entry) throws {
        let executor = try Executor(model: Model(contentsOf: entry.modelURL))
        let input = try Tensor(npyAt: Fixtures.url("exporters/\(entry.input)"))
        let golden = try Tensor(npyAt: Fixtures.url("exporters/\(entry.outputs[0].file)"))
        let inputName = try #require(executor.inputs.first?.name)
        let first = try input.sliced(axis: 0, 0..<1)
        let three = try Tensor(
            shape: [3] + Array(input.shape.dropFirst()),
            scalars: try input.scalars(as: Float.self) + first.scalars(as: Float.self))
        let one = try #require(try executor.run([inputName: first], fetch: [entry.outputs[0].tensor]).values.first)
        let many = try #require(try executor.run([inputName: three], fetch: [entry.outputs[0].tensor]).values.first)
        let firstRow = try golden.sliced(axis: 0, 0..<1)
        #expect(try TensorComparison(one, firstRow).relativeToLargest <= Self.tolerance)
        #expect(try TensorComparison(many.sliced(axis: 0, 0..<2), golden).relativeToLargest <= Self.tolerance)
        #expect(try TensorComparison(many.sliced(axis: 0, 2..<3), firstRow).relativeToLargest <= Self.tolerance)
    }
}

import Explain
import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Every CAM method on every export of the ResNet-, VGG-, ViT- and Swin-style fixtures against
/// pytorch-grad-cam 1.5.7 on the PyTorch model the export came from. The layer's layout
/// (channels-first, Swin's channels-last, tokens) is inferred, never given.
@Suite struct CAMGoldenTests {
    /// Heatmaps live in [0, 1), so this is absolute. Activations and gradients agree with
    /// PyTorch to ~1e-6 relative and min-max scaling can amplify that; the worst pixel measured
    /// is 7.3e-6 (DeiT XGradCAM). 1e-4 leaves >10x headroom and is ten times tighter than the
    /// 1e-3 the full-size models must meet.
    static let heatmapTolerance = 1e-4
    /// Raw maps, relative to their largest magnitude. XGradCAM divides by each channel's
    /// activation sum, which for LayerNorm outputs can be near zero; the worst measured is
    /// 3.4e-5 (torchvision ViT XGradCAM), everything else below 1e-5.
    static let rawTolerance = 1e-4

    static func load(_ path: String) throws -> Tensor { try Tensor(npyAt: Fixtures.url(path)) }

    func check(_ actual: Tensor, _ expectedPath: String, relative: Bool, _ label: String, samples: [Int]? = nil) throws {
        var expected = try Self.load(expectedPath)
        var got = actual
        if let samples {
            guard !samples.isEmpty else { return }
            expected = try rows(expected, samples)
            got = try rows(got, samples)
        }
        let comparison = try TensorComparison(got.converted(to: .float32), expected)
        let error = relative ? comparison.relativeToLargest : comparison.maxAbsoluteDifference
        #expect(comparison.sameShape, "\(label): \(got.shape) vs \(expected.shape)")
        #expect(error <= (relative ? Self.rawTolerance : Self.heatmapTolerance), "\(label): \(comparison)")
    }

    @Test(arguments: CAMManifest.exports)
    func everyMethodMatchesPytorchGradCAM(_ export: CAMExport) throws {
        let model = try Model(contentsOf: export.modelURL)
        let input = try Self.load(export.entry.input)
        for method in CAMMethod.allCases {
            let golden = try #require(export.entry.methods[method.rawValue], "no golden for \(method)")
            let generator = try GradCAMHeatmapGenerator(model: model, targetLayer: export.entry.layer, method: method)
            let result = try generator.explain(input, targetClasses: export.entry.classes)
            let label = "\(export.fixture) \(method.rawValue)"
            #expect(result.layerLayouts.map(\.description) == [export.entry.layer_layout], "\(label)")
            if let signs = golden.svd_max_abs_entry_positive {
                // The singular vector's sign is arbitrary: raw maps match up to sign, heatmaps where the conventions agree.
                try checkUpToSign(result.rawMaps[0], try #require(golden.raw), label)
                try check(result.heatmaps, golden.heatmap, relative: false, label, samples: signs.indices.filter { signs[$0] })
            } else {
                try check(result.rawMaps[0], try #require(golden.raw), relative: true, label + " raw")
                try check(result.heatmaps, golden.heatmap, relative: false, label)
            }
        }
    }

    @Test(arguments: CAMManifest.exports)
    func variantsAndGuidedBackprop(_ export: CAMExport) throws {
        let model = try Model(contentsOf: export.modelURL)
        let input = try Self.load(export.entry.input)
        let classes = export.entry.classes
        let variants = export.entry.variants
        if let eigen = variants["gradcam_eigensmooth"] {
            let result = try GradCAMHeatmapGenerator(model: model, targetLayer: export.entry.layer, options: CAMOptions(eigenSmooth: true))
                .explain(input, targetClasses: classes)
            let signs = eigen.svd_max_abs_entry_positive ?? []
            try check(result.heatmaps, eigen.heatmap, relative: false, "\(export.fixture) eigensmooth", samples: signs.indices.filter { signs[$0] })
        }
        let aug = try #require(variants["gradcam_augsmooth"])
        let smoothed = try GradCAMHeatmapGenerator(model: model, targetLayer: export.entry.layer, options: CAMOptions(augSmooth: true))
            .explain(input, targetClasses: classes)
        try check(smoothed.heatmaps, aug.heatmap, relative: false, "\(export.fixture) augsmooth")
        let two = try #require(variants["gradcam_twolayers"])
        let twoLayers = try GradCAMHeatmapGenerator(model: model, targetLayers: try #require(two.layers)).explain(input, targetClasses: classes)
        try check(twoLayers.heatmaps, two.heatmap, relative: false, "\(export.fixture) two layers")
        let guided = try GradCAMHeatmapGenerator(model: model, targetLayer: export.entry.layer).guidedBackprop(input, targetClasses: classes)
        try check(guided, export.entry.guided_backprop, relative: true, "\(export.fixture) guided backprop")
    }

    func checkUpToSign(_ actual: Tensor, _ expectedPath: String, _ label: String) throws {
        let expected = try Self.load(expectedPath)
        let per = expected.count / max(expected.shape[0], 1)
        let a = try actual.doubles()
        let e = try expected.doubles()
        let scale = e.map(abs).max() ?? 1
        for n in 0..<expected.shape[0] {
            let range = n * per..<(n + 1) * per
            let same = zip(a[range], e[range]).map { abs($0 - $1) }.max() ?? 0
            let flipped = zip(a[range], e[range]).map { abs($0 + $1) }.max() ?? 0
            #expect(min(same, flipped) / scale <= Self.rawTolerance, "\(label) sample \(n): \(min(same, flipped) / scale)")
        }
    }
}

/// The samples `indices` of a batch, as a smaller batch.
private func rows(_ tensor: Tensor, _ indices: [Int]) throws -> Tensor {
    let per = tensor.count / max(tensor.shape[0], 1)
    let values = try tensor.converted(to: .float32).scalars(as: Float.self)
    return try Tensor(shape: [indices.count] + Array(tensor.shape.dropFirst()), scalars: indices.flatMap { values[$0 * per..<($0 + 1) * per] })
}

@testable import Audit
import Foundation
import ShortcutDetect
import TestSupport
import Testing

@Suite struct CounterfactualTests {
    /// Each fill of the watermark region, then our forward pass, against the same fill in PyTorch
    /// and onnxruntime's predictions (tools/export_audit_goldens.py).
    @Test func fillsAndPredictionsMatchOnnxRuntime() throws {
        let goldens = try AuditGoldens.load()
        let x = try AuditGoldens.inputs(goldens.files)
        let mask = try RegionMask(rectangles: [(x: 3, y: 3, width: 10, height: 10)], height: 64, width: 64)
        let seeds = goldens.files.indices.map { TorchGenerator.seed(base: goldens.settings.seed, index: $0) }
        for name in ["shortcut", "control"] {
            let reference = try #require(goldens.models[name])
            let executor = try AuditGoldens.executor(name)
            let before = try executor.classProbabilities(x, output: "logits")
            for fill in CounterfactualFill.allCases {
                let golden = try #require(reference.counterfactual[fill.rawValue])
                let after = try executor.classProbabilities(try fill.apply(batch: x, region: mask, seeds: seeds), output: "logits")
                var records: [SampleRecord] = []
                for (n, sample) in golden.samples.enumerated() {
                    let predicted = ClassProbabilities.argmax(before[n])
                    #expect(predicted == sample.predicted)
                    #expect(ClassProbabilities.argmax(after[n]) == sample.predicted_cf, "\(name) \(fill) \(sample.file)")
                    // Probabilities from our float32 forward pass against onnxruntime's: 1e-5. The
                    // blur and the noise enter within float32 rounding of PyTorch's (the noise's
                    // draws within a few ulps).
                    #expect(abs(after[n][predicted] - sample.confidence_cf) <= 1e-5, "\(name) \(fill) \(sample.file)")
                    var record = SampleRecord(
                        index: n, file: sample.file, group: goldens.groups[n], label: goldens.labels[n], predicted: predicted,
                        confidence: before[n][predicted], target: predicted, scores: nil)
                    record.counterfactual = CounterfactualRecord(predicted: ClassProbabilities.argmax(after[n]), confidence: after[n][predicted])
                    records.append(record)
                }
                for (group, expected) in golden.groups {
                    let summary = try #require(CounterfactualSummary.of(records.filter { $0.group == group }, seed: 1))
                    check(summary, expected, "\(name) \(fill) \(group)")
                    for (label, byLabel) in expected.by_label ?? [:] {
                        check(try #require(summary.byLabel[Int(label) ?? -1]), byLabel, "\(name) \(fill) \(group) label \(label)")
                    }
                }
            }
        }
    }

    func check(_ summary: CounterfactualSummary, _ expected: AuditGoldens.CounterfactualGroup, _ context: String) {
        #expect(summary.n == expected.n, "\(context)")
        // Counts of equal predictions: exact.
        #expect(summary.flipRate.value == expected.flip_rate, "\(context)")
        #expect(summary.accuracy?.value == expected.accuracy && summary.accuracyCounterfactual?.value == expected.accuracy_counterfactual, "\(context)")
        // A mean of probability differences, each within 1e-5.
        #expect(abs(summary.confidenceDrop.value - expected.confidence_drop) <= 1e-5, "\(context)")
        #expect(summary.flipRate.ci95.0 <= summary.flipRate.value && summary.flipRate.value <= summary.flipRate.ci95.1)
    }

    /// torchvision's gaussian_blur of a preprocessed fixture image at the audit's sigma.
    @Test func blurMatchesTorchvision() throws {
        let x = try AuditGoldens.inputs(["img_000.png"])
        let blurred = try GaussianBlur.apply(try x.scalars(as: Float.self), channels: 3, height: 64, width: 64, sigma: GaussianBlur.defaultSigma(height: 64, width: 64))
        let golden = try Tensor(npyAt: Fixtures.url("audit/goldens/blur_img_000.npy")).scalars(as: Float.self)
        // 625 float32 products summed by torch's convolution against our separable pass in double: 1e-6.
        #expect(zip(blurred, golden).map { abs($0 - $1) }.max() ?? 1 <= 1e-6)
        #expect(GaussianBlur.kernel(sigma: 4, limit: 64).count == 25)
        #expect(GaussianBlur.kernel(sigma: 4, limit: 5).count == 9)  // reflect padding needs the radius below the side
    }

    @Test func meanFillTakesTheRestOfTheImage() throws {
        let region = try RegionMask(height: 2, width: 2, inside: [true, false, false, false])
        let filled = try CounterfactualFill.mean.apply([9, 1, 2, 3, 9, 4, 5, 6], channels: 2, region: region, seed: 0)
        #expect(filled == [2, 1, 2, 3, 5, 4, 5, 6])
        #expect(throws: AuditError.self) {
            try CounterfactualFill.mean.apply([1, 2, 3, 4], channels: 1, region: try RegionMask(height: 2, width: 2, inside: [true, true, true, true]), seed: 0)
        }
        // Noise: the same seed draws the same fill, another seed another one; outside stays.
        let a = try CounterfactualFill.noise.apply([9, 1, 2, 3], channels: 1, region: region, seed: 5)
        #expect(a == (try CounterfactualFill.noise.apply([9, 1, 2, 3], channels: 1, region: region, seed: 5)))
        #expect(a != (try CounterfactualFill.noise.apply([9, 1, 2, 3], channels: 1, region: region, seed: 6)))
        #expect(Array(a[1...]) == [1, 2, 3])
    }
}

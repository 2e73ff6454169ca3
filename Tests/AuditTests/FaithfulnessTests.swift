@testable import Audit
import Foundation
import ShortcutDetect
import TestSupport
import Testing

@Suite struct FaithfulnessGoldenTests {
    /// ROAD's noise is torch.randn from a seed: the generator must draw PyTorch's numbers.
    @Test func torchGeneratorDrawsTorchsNumbers() throws {
        struct Draws: Decodable {
            let strided_memory_order: [Float]
            let contiguous: [Float]
        }
        struct File: Decodable { let draws: [String: Draws] }
        let file = try JSONDecoder().decode(File.self, from: Data(contentsOf: Fixtures.url("audit/goldens/torch_random.json")))
        #expect(file.draws.count == 4)
        for (seed, draws) in file.draws {
            var strided = TorchGenerator(seed: try #require(UInt32(seed)))
            // The double-precision path (strided tensors) is the same arithmetic as PyTorch's: exact.
            #expect(strided.normalStrided(draws.strided_memory_order.count) == draws.strided_memory_order, "seed \(seed)")
            var contiguous = TorchGenerator(seed: try #require(UInt32(seed)))
            // The float fill evaluates log, cos and sin in float32 with SLEEF's vector functions in
            // PyTorch and with libm here; √(−2 log u) amplifies log's error for u near 1, and the
            // draws (all below 4 in size) differ by up to 1.2e-6 (five ulps): 2e-6. Scaled by ROAD's
            // 0.01, that is 2e-8 on an input.
            let values = contiguous.normalContiguous(draws.contiguous.count)
            #expect(zip(values, draws.contiguous).allSatisfy { abs($0 - $1) <= 2e-6 }, "seed \(seed): \(zip(values, draws.contiguous).map { $0 - $1 })")
        }
        #expect(TorchGenerator.seed(base: 0, index: 1, stream: 41) == 1_000_044)
        #expect(TorchGenerator.seed(base: UInt32.max, index: 0, stream: 1) == 0)  // modulo 2^32, as the script computes it
    }

    /// pytorch-grad-cam's metrics on its own maps of 16 fixture images per model.
    @Test func metricsMatchPytorchGradCAMOnItsOwnMaps() throws {
        let goldens = try AuditGoldens.load()
        let rows = goldens.settings.cam_rows
        let x = try AuditGoldens.inputs(rows.map { goldens.files[$0] })
        for name in ["shortcut", "control"] {
            let reference = try #require(goldens.models[name])
            let cams = try Tensor(npyAt: Fixtures.url("audit/goldens/cams_\(name).npy"))
            let classes = rows.map { reference.default_path[$0].predicted }
            let executor = try AuditGoldens.executor(name)
            let options = FaithfulnessOptions(percentiles: goldens.settings.road_percentiles, seed: goldens.settings.seed)
            let scores = try Faithfulness(executor: executor, output: "logits", options: options)
                .evaluate(x, heatmaps: cams, classes: classes, indices: rows)
            // Every score is a float32 probability (one ulp is 6e-8 near 1) from logits that agree
            // with PyTorch's to about 1e-6 relative; ROAD's imputation is the same direct solve and
            // the same noise (drawn within a few ulps, times 0.01), so 1e-6 holds everything.
            let tolerance = 1e-6
            for (k, row) in rows.enumerated() {
                let g = reference.faithfulness[row]
                let s = scores[k]
                #expect(abs(s.camMultConfidenceChange - g.cam_mult_confidence_change) <= tolerance, "\(name) \(row)")
                #expect(abs(s.dropInConfidence - g.drop_in_confidence) <= tolerance)
                #expect(s.increaseInConfidence == g.increase_in_confidence)
                for (i, p) in goldens.settings.road_percentiles.enumerated() {
                    #expect(abs(s.roadMostRelevantFirst[i] - (g.road_most_relevant_first[String(p)] ?? .nan)) <= tolerance, "\(name) \(row) \(p)")
                    #expect(abs(s.roadLeastRelevantFirst[i] - (g.road_least_relevant_first[String(p)] ?? .nan)) <= tolerance, "\(name) \(row) \(p)")
                }
                #expect(abs(s.roadCombined - g.road_combined) <= tolerance, "\(name) \(row)")
                #expect(s.deletionAUC == nil && s.insertionAUC == nil)
            }
            // The curves (66 forward passes an image): two images per model.
            let curves = Faithfulness(executor: executor, output: "logits", options: FaithfulnessOptions(percentiles: [50], curves: true))
            let first = try Tensor(shape: [2, 3, 64, 64], scalars: Array(try x.scalars(as: Float.self)[0..<2 * 3 * 64 * 64]))
            let firstMaps = try Tensor(shape: [2, 64, 64], scalars: Array(try cams.scalars(as: Float.self)[0..<2 * 64 * 64]))
            let curved = try curves.evaluate(first, heatmaps: firstMaps, classes: Array(classes.prefix(2)), indices: Array(rows.prefix(2)))
            for k in 0..<2 {
                let g = reference.faithfulness[rows[k]]
                // Means of 33 float32 probabilities; the insertion start is our separable blur in
                // double against torchvision's float32 convolution (1e-7 on the inputs).
                #expect(abs((curved[k].deletionAUC ?? .nan) - g.deletion_auc) <= 1e-6, "\(name) \(k)")
                #expect(abs((curved[k].insertionAUC ?? .nan) - g.insertion_auc) <= 1e-6, "\(name) \(k)")
            }
        }
    }

    @Test func percentileIsNumpysLinearInterpolation() {
        // np.percentile(np.float32([0, 1, 2, 3, 4]), 30) = 1.2: virtual index 4 * 0.3 = 1.2.
        #expect(Faithfulness.percentile([4, 0, 3, 1, 2], 30) == Float(1.2))
        #expect(Faithfulness.percentile([0, 0, 0, 5], 50) == 0)  // ties at the threshold: ROAD then removes every pixel
        #expect(Faithfulness.percentile([7], 80) == 7)
    }

    @Test func imputerFillsHolesFromTheirNeighbours() throws {
        var generator = TorchGenerator(seed: 0)
        // A constant image keeps its value wherever pixels are removed (noise off).
        let image = [Float](repeating: 0.25, count: 2 * 5 * 5)
        var keep = [Bool](repeating: true, count: 25)
        for p in [6, 7, 12, 18] { keep[p] = false }
        let filled = try NoisyLinearImputer.impute(image, channels: 2, height: 5, width: 5, keep: keep, noise: 0, generator: &generator)
        #expect(filled.allSatisfy { abs($0 - 0.25) < 1e-6 })
        // A ramp is harmonic for this stencil: the imputation restores it.
        let ramp = (0..<25).map { Float($0 % 5) }
        let restored = try NoisyLinearImputer.impute(ramp, channels: 1, height: 5, width: 5, keep: keep, noise: 0, generator: &generator)
        #expect(zip(restored, ramp).allSatisfy { abs($0 - $1) < 1e-5 }, "\(restored)")
        // Nothing kept: the reference's solver returns zeros, then the noise.
        let none = try NoisyLinearImputer.impute(ramp, channels: 1, height: 5, width: 5, keep: Array(repeating: false, count: 25), generator: &generator)
        #expect(none.allSatisfy { abs($0) < 0.06 })
        #expect(throws: AuditError.self) {
            try NoisyLinearImputer.impute(ramp, channels: 2, height: 5, width: 5, keep: keep, generator: &generator)
        }
        // Large systems go to conjugate gradients: the same solution to far below float32's resolution.
        let x = try AuditGoldens.inputs(["img_003.png"]).scalars(as: Float.self)
        var most = [Bool](repeating: true, count: 64 * 64)
        for p in 0..<64 * 64 where (p / 64 + 2 * (p % 64)) % 7 != 0 { most[p] = false }
        var (a, b) = (TorchGenerator(seed: 3), TorchGenerator(seed: 3))
        let direct = try NoisyLinearImputer.impute(x, channels: 3, height: 64, width: 64, keep: most, noise: 0.01, generator: &a, bandLimit: 1 << 24)
        let iterative = try NoisyLinearImputer.impute(x, channels: 3, height: 64, width: 64, keep: most, noise: 0.01, generator: &b, bandLimit: 0)
        #expect(zip(direct, iterative).map { abs($0 - $1) }.max() ?? 1 <= 1e-6)
    }
}

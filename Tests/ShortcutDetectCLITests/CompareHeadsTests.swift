import Foundation
import ShortcutDetect
import TensorCore
import TestSupport
import Testing

/// Attention overlap between the heads of a two-output model (Fixtures/heads, from
/// tools/make_two_head_fixture.py): pytorch-grad-cam's maps per head and the reference's
/// `calculate_overlap` of them.
@Suite struct CompareHeadsTests {
    struct Manifest: Decodable {
        struct Scores: Decodable {
            let dice: Double
            let iou: Double
            let cosine: Double
        }
        let overlap_per_image: [Scores]
        let overlap_mean: Scores
        let classes: [String: [Int]]
    }

    let model = Fixtures.url("heads/two_head.onnx")
    let manifest: Manifest

    init() throws {
        manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: Fixtures.url("heads/manifest.json")))
    }

    /// The reference computes in float32 (its means are float32 too); ~1e-7 relative, so 1e-6.
    func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-6 }

    @Test func eachOutputIsExplainedAsPytorchGradCAMExplainsIt() throws {
        let input = try Tensor(npyAt: Fixtures.url("heads/input.npy"))
        let loaded = try Model(contentsOf: model)
        for head in ["disease", "attribute"] {
            let generator = try GradCAMHeatmapGenerator(model: loaded, targetLayer: "features.1", output: head)
            #expect(generator.outputName == head)
            let result = try generator.explain(input)
            #expect(result.classes == manifest.classes[head], "\(head)")
            let golden = try Tensor(npyAt: Fixtures.url("heads/gradcam_\(head).npy"))
            // As CAMGoldenTests: heatmaps in [0, 1), measured agreement ~1e-6, bound 1e-4.
            let comparison = try TensorComparison(result.heatmaps, golden)
            #expect(comparison.sameShape && comparison.maxAbsoluteDifference <= 1e-4, "\(head): \(comparison)")
        }
        // Without a name, the first output.
        #expect(try GradCAMHeatmapGenerator(model: loaded, targetLayer: "features.1").outputName == "disease")
        #expect(throws: ExplainError.self) { try GradCAMHeatmapGenerator(model: loaded, targetLayer: "features.1", output: "age") }
    }

    @Test func overlapMatchesTheReferenceOnItsMaps() throws {
        let disease = try Tensor(npyAt: Fixtures.url("heads/gradcam_disease.npy"))
        let attribute = try Tensor(npyAt: Fixtures.url("heads/gradcam_attribute.npy"))
        let overlap = try HeadOverlap.compare(disease, attribute, threshold: 0.5)
        #expect(overlap.perImage.count == manifest.overlap_per_image.count)
        for (ours, theirs) in zip(overlap.perImage, manifest.overlap_per_image) {
            #expect(close(ours.dice, theirs.dice) && close(ours.iou, theirs.iou) && close(ours.cosine, theirs.cosine), "\(ours) vs \(theirs)")
        }
        #expect(close(overlap.mean.dice, manifest.overlap_mean.dice) && close(overlap.mean.iou, manifest.overlap_mean.iou))
        #expect(close(overlap.mean.cosine, manifest.overlap_mean.cosine))
        // A map against itself: everything overlaps; against an empty map: nothing, and no NaN.
        let same = try HeadOverlap.compare(disease, disease)
        #expect(same.perImage.allSatisfy { abs($0.dice - 1) < 1e-9 && abs($0.iou - 1) < 1e-9 && abs($0.cosine - 1) < 1e-6 })
        let empty = try HeadOverlap.compare(disease, Tensor(zeros: .float32, shape: disease.shape))
        #expect(empty.mean.dice == 0 && empty.mean.iou == 0 && empty.mean.cosine == 0)
        #expect(throws: AuditError.self) { try HeadOverlap.compare(disease, Tensor(zeros: .float32, shape: [4, 16, 16])) }
    }

    @Test func compareHeadsReportsPerImageAndMean() throws {
        let folder = try Fixtures.temporaryDirectory()
        let json = folder.appendingPathComponent("overlap.json")
        let result = try CLITests().cli([
            "compare-heads", model.path, "--head", "disease", "--head", "attribute", "--layer", "features.1",
            "--input", Fixtures.url("heads/input.npy").path, "--json", json.path,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("disease vs attribute at features.1 (gradcam, threshold 0.5):"))
        #expect(result.stdout.contains("mean over 4 image(s): dice \(String(format: "%.4f", manifest.overlap_mean.dice))"))
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any] ?? [:]
        #expect(root["classes"] as? [String: [Int]] == manifest.classes)
        let pair = try #require((root["pairs"] as? [[String: Any]])?.first)
        #expect(pair["heads"] as? [String] == ["disease", "attribute"])
        let perImage = try #require(pair["per_image"] as? [[String: Double]])
        for (ours, theirs) in zip(perImage, manifest.overlap_per_image) {
            #expect(close(ours["dice"] ?? -1, theirs.dice) && close(ours["iou"] ?? -1, theirs.iou))
            #expect(close(ours["cosine"] ?? -1, theirs.cosine))
        }

        let unknown = try CLITests().cli([
            "compare-heads", model.path, "--head", "disease", "--head", "age", "--layer", "features.1",
            "--input", Fixtures.url("heads/input.npy").path,
        ])
        #expect(unknown.status != 0 && unknown.stderr.contains("no output 'age'; its outputs are disease, attribute"))
        let one = try CLITests().cli(["compare-heads", model.path, "--head", "disease", "--layer", "features.1", "--input", "x.npy"])
        #expect(one.status != 0 && one.stderr.contains("two or more different --head"))
    }

    @Test func gradcamExplainsTheNamedOutput() throws {
        let folder = try Fixtures.temporaryDirectory()
        let out = folder.appendingPathComponent("attribute.npy")
        let result = try CLITests().cli([
            "gradcam", model.path, "--input", Fixtures.url("heads/input.npy").path, "--layer", "features.1",
            "--output-name", "attribute", "--output", out.path,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let comparison = try TensorComparison(try Tensor(npyAt: out), try Tensor(npyAt: Fixtures.url("heads/gradcam_attribute.npy")))
        #expect(comparison.maxAbsoluteDifference <= 1e-4, "\(comparison)")
    }
}

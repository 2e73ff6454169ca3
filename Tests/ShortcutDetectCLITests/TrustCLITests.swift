import Foundation
import ShortcutDetect
import TestSupport
import Testing

/// Issue 14 from the command line: probabilities read once, the model's own image shape, mask
/// spaces, and the faithfulness metrics of `gradcam`.
@Suite struct TrustCLITests {
    let cli = CLITests()

    /// `Conv(3→4, 1×1) → Relu → GlobalAveragePool → Flatten → Gemm(4→4) → Softmax` on `[N, 3, h, w]`:
    /// a classifier whose graph ends in Softmax.
    func softmaxModel(height: Int = 8, width: Int = 8) throws -> URL {
        func values(_ count: Int, _ scale: Float) -> [Float] { (0..<count).map { Float(($0 * 5) % 7) * scale - 0.6 } }
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("softmax.onnx")
        try ONNXBuilder(
            nodes: [
                .init("Conv", ["x", "conv.w", "conv.b"], ["c"], name: "/features/conv/Conv"),
                .init("Relu", ["c"], ["r"], name: "/features/relu/Relu"),
                .init("GlobalAveragePool", ["r"], ["p"], name: "/pool/GlobalAveragePool"),
                .init("Flatten", ["p"], ["f"], name: "/Flatten"),
                .init("Gemm", ["f", "fc.w", "fc.b"], ["logits"], name: "/fc/Gemm", ints: ["transB": 1]),
                .init("Softmax", ["logits"], ["probabilities"], name: "/Softmax", ints: ["axis": 1]),
            ],
            initializers: [
                .float("conv.w", dims: [4, 3, 1, 1], values(12, 0.4)), .float("conv.b", dims: [4], [0.1, 0.2, 0.3, 0.4]),
                .float("fc.w", dims: [4, 4], values(16, 1.5)), .float("fc.b", dims: [4], [2, 0, 0, 0]),
            ],
            inputs: [.init("x", shape: ["batch", 3, .value(height), .value(width)])],
            outputs: [.init("probabilities", shape: ["batch", 4])]
        ).write(to: url)
        return url
    }

    func image(width: Int, height: Int, in folder: URL, name: String = "a.png") throws -> URL {
        let url = folder.appendingPathComponent(name)
        try PNG.write(try RGBImage(width: width, height: height, pixels: (0..<width * height * 3).map { UInt8(($0 * 29) % 256) }), to: url)
        return url
    }

    @Test func probabilitiesAreNotSoftmaxedTwice() throws {
        let model = try softmaxModel()
        let folder = try Fixtures.temporaryDirectory()
        let picture = try image(width: 8, height: 8, in: folder)
        // What the model itself says for this image.
        let x = try Preprocessing.evaluation(height: 8, width: 8).tensor(RGBImage(contentsOf: picture))
        let executor = try Executor(model: Model(contentsOf: model))
        let probabilities = try #require(try executor.run(["x": x.reshaped([1, 3, 8, 8])])["probabilities"]).doubles()
        let top = probabilities.indices.max { probabilities[$0] < probabilities[$1] } ?? 0
        let expected = String(format: "%.1f%%", 100 * probabilities[top])
        let run = try cli.cli(["gradcam", model.path, "--image", picture.path, "--layer", "features.relu", "--out", folder.appendingPathComponent("out").path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.hasPrefix("a.png: \(top) \(expected)"), "\(run.stdout) vs \(expected)")
        // Softmaxing the distribution again would flatten it: --output-kind logits does exactly that.
        let again = ClassProbabilities.softmax(probabilities)
        let forced = try cli.cli([
            "gradcam", model.path, "--image", picture.path, "--layer", "features.relu", "--output-kind", "logits", "--out",
            folder.appendingPathComponent("out2").path,
        ])
        #expect(forced.stdout.hasPrefix("a.png: \(top) \(String(format: "%.1f%%", 100 * again[top]))"), "\(forced.stdout)")
        #expect(again[top] < probabilities[top])

        // The audit's confidence is the model's probability too.
        let groups = folder.appendingPathComponent("groups.csv")
        try "file,group\na.png,g\n".write(to: groups, atomically: true, encoding: .utf8)
        let audit = try cli.cli(["audit", model.path, "--images", folder.path, "--groups", groups.path, "--layer", "features.relu", "--out", folder.appendingPathComponent("report").path])
        #expect(audit.status == 0, "\(audit.stderr)")
        let rows = try String(contentsOf: folder.appendingPathComponent("report/samples.csv"), encoding: .utf8).split(separator: "\n")
        let confidence = Double(rows[1].split(separator: ",", omittingEmptySubsequences: false)[4]) ?? -1
        #expect(abs(confidence - probabilities[top]) < 1e-6)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("report/summary.json"))) as? [String: Any]
        #expect(summary?["output_kind"] as? String == "probabilities")
    }

    @Test func imagesTakeTheModelsOwnShape() throws {
        // A model fixed at 48x192: images are cropped to 48x192 (not 48x48), with no --size.
        let model = try softmaxModel(height: 48, width: 192)
        let folder = try Fixtures.temporaryDirectory()
        let picture = try image(width: 300, height: 100, in: folder)
        let out = folder.appendingPathComponent("out")
        let run = try cli.cli(["gradcam", model.path, "--image", picture.path, "--layer", "features.relu", "--out", out.path, "--save-npy"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try Tensor(npyAt: out.appendingPathComponent("a.npy")).shape == [48, 192])
    }

    @Test func masksAreReadInTheSpaceTheirSizeSays() throws {
        let model = Fixtures.url("models/resnet_basic_ts17.onnx").path
        let folder = try Fixtures.temporaryDirectory()
        _ = try image(width: 100, height: 80, in: folder, name: "a.png")
        _ = try image(width: 100, height: 80, in: folder, name: "b.png")
        let groups = folder.appendingPathComponent("groups.csv")
        try "file,group\na.png,x\nb.png,y\n".write(to: groups, atomically: true, encoding: .utf8)
        func audit(mask: (Int, Int)?, _ extra: [String] = []) throws -> (CLITests.Outcome, [String: Any]) {
            var arguments = ["audit", model, "--images", folder.path, "--groups", groups.path, "--layer", "layer4", "--faithfulness", "0"]
            if let mask {
                let url = folder.appendingPathComponent("mask\(mask.0)x\(mask.1).png")
                try PNG.write(try RegionMask(rectangles: [(x: 0, y: 0, width: 20, height: 20)], height: mask.1, width: mask.0).picture, to: url)
                arguments += ["--mask", url.path]
            }
            let out = folder.appendingPathComponent("report-\(UUID().uuidString)")
            let result = try cli.cli(arguments + extra + ["--out", out.path])
            let summary = (try? JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("summary.json")))) as? [String: Any]
            return (result, summary ?? [:])
        }
        // The images' size: image space, through resize 73 and crop 64 (20 px become 18 after the crop's margin).
        let (onImages, imageSummary) = try audit(mask: (100, 80))
        #expect(onImages.status == 0, "\(onImages.stderr)")
        let region = try #require(imageSummary["mask"] as? [String: Any])
        #expect(region["space"] as? String == "image")
        #expect((region["space_reason"] as? String)?.contains("resize the shorter side to 73, centre crop 64x64") == true)
        // The model's input size: model space, used as is: 400 of 4096 pixels.
        let (onModel, modelSummary) = try audit(mask: (64, 64))
        #expect(onModel.status == 0, "\(onModel.stderr)")
        #expect((modelSummary["mask"] as? [String: Any])?["space"] as? String == "model")
        #expect((modelSummary["mask"] as? [String: Any])?["area"] as? Double == 400.0 / 4096)
        // Anything else, or a space the size contradicts, is an error that names both sizes.
        let (odd, _) = try audit(mask: (50, 50))
        #expect(odd.status != 0 && odd.stderr.contains("mask50x50.png is 50x50: neither the images' size (100x80) nor the model's input size (64x64)"), "\(odd.stderr)")
        let (contradicted, _) = try audit(mask: (64, 64), ["--mask-space", "image"])
        #expect(contradicted.status != 0 && contradicted.stderr.contains("--mask-space image: mask64x64.png is 64x64 but the images are 100x80"))
        // Without a region the maps are clustered (SpRAy), and --counterfactual needs a region.
        let (plain, plainSummary) = try audit(mask: nil)
        #expect(plain.status == 0 && plainSummary["spray_note"] as? String != nil)  // two images are too few to cluster: said, not crashed
        let (noRegion, _) = try audit(mask: nil, ["--counterfactual", "mean"])
        #expect(noRegion.status != 0 && noRegion.stderr.contains("--counterfactual fills the shortcut region"))
        // Image space holds only for images of the mask's size: another size is skipped and listed
        // (the audit goes on), or with --strict stops the audit.
        _ = try image(width: 90, height: 80, in: folder, name: "b.png")
        let (mixed, mixedSummary) = try audit(mask: (100, 80))
        #expect(mixed.status == 0, "\(mixed.stderr)")
        #expect((mixedSummary["skipped"] as? [String: Any])?["unusable"] as? Int == 1 && mixedSummary["n"] as? Int == 1)
        let (strict, _) = try audit(mask: (100, 80), ["--strict"])
        #expect(strict.status != 0 && strict.stderr.contains("b.png is 90x80 but the region was drawn on images of 100x80"), "\(strict.stderr)")
    }

    @Test func gradcamWritesTheFaithfulnessMetrics() throws {
        let folder = try Fixtures.temporaryDirectory()
        let metrics = folder.appendingPathComponent("metrics.json")
        let run = try cli.cli([
            "gradcam", Fixtures.url("models/resnet_basic_ts17.onnx").path, "--input", cli.input, "--layer", "layer4",
            "--output", folder.appendingPathComponent("heat.npy").path, "--metrics-json", metrics.path, "--road-percentiles", "25,50,75",
        ])
        #expect(run.status == 0, "\(run.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: metrics)) as? [String: Any])
        let n = try Tensor(npyAt: URL(fileURLWithPath: cli.input)).shape[0]
        for key in ["cam_mult_confidence_change", "drop_in_confidence", "increase_in_confidence", "road_combined", "deletion_auc", "insertion_auc"] {
            #expect((json[key] as? [Double])?.count == n, "\(key)")
        }
        let most = try #require(json["road_most_relevant_first"] as? [String: [Double]])
        let least = try #require(json["road_least_relevant_first"] as? [String: [Double]])
        #expect(most.keys.sorted() == ["25", "50", "75"] && least.keys.sorted() == ["25", "50", "75"])
        // ROADCombined is the halved difference of the two averages, per sample.
        let combined = try #require(json["road_combined"] as? [Double])
        for s in 0..<n {
            let lerf = least.values.reduce(Float(0)) { $0 + Float($1[s]) } / 3
            let morf = most.values.reduce(Float(0)) { $0 + Float($1[s]) } / 3
            #expect(abs(Double((lerf - morf) / 2) - combined[s]) < 1e-6)
        }
        let bad = try cli.cli(["gradcam", Fixtures.url("models/resnet_basic_ts17.onnx").path, "--input", cli.input, "--layer", "layer4",
                               "--output", folder.appendingPathComponent("h.npy").path, "--metrics-json", metrics.path, "--road-percentiles", "0,50"])
        #expect(bad.status != 0 && bad.stderr.contains("--road-percentiles"))
    }
}

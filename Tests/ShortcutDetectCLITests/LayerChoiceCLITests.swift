import Foundation
import ShortcutDetect
import TensorCore
import TestSupport
import Testing

/// Commands without `--layer` explain the layer `inspect` suggests and say so; channels-last
/// models take channels-last images; `--layer-layout` and `--input-layout` override.
@Suite struct LayerChoiceCLITests {
    let cli = CLITests()
    let resnet = Fixtures.url("models/resnet_basic_ts17.onnx").path
    let swin = Fixtures.url("models/swin_ts17.onnx").path
    let keras = Fixtures.url("exporters/keras_mobilenetv3_op15.onnx").path

    func imageFolder(_ names: [String]) throws -> URL {
        let folder = try Fixtures.temporaryDirectory()
        for name in names { try FileManager.default.copyItem(at: Fixtures.url("images/\(name)"), to: folder.appendingPathComponent(name)) }
        return folder
    }

    @Test func gradcamWithoutLayerExplainsTheSuggestion() throws {
        let heat = try Fixtures.temporaryDirectory().appendingPathComponent("heat.npy")
        let result = try cli.cli(["gradcam", resnet, "--input", Fixtures.url("models/inputs/resnet_basic.npy").path, "--output", heat.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("using the suggested layer layer4 (tensor /layer4/layer4.0/relu_1/Relu_output_0 [1, 32, 2, 2], nchw)"))
        #expect(result.stdout.contains("gradcam at layer4 -> /layer4/layer4.0/relu_1/Relu_output_0"))
        // CAMGoldenTests' tolerance and reason: pytorch-grad-cam at layer4.
        let comparison = try TensorComparison(Tensor(npyAt: heat), Tensor(npyAt: Fixtures.url("cam/resnet_basic/gradcam.npy")))
        #expect(comparison.sameShape && comparison.maxAbsoluteDifference <= 1e-4, "\(comparison)")

        let swinHeat = try cli.cli(["gradcam", swin, "--input", Fixtures.url("models/inputs/swin.npy").path, "--output", heat.path])
        #expect(swinHeat.status == 0, "\(swinHeat.stderr)")
        #expect(swinHeat.stderr.contains("using the suggested layer norm (tensor /norm/LayerNormalization_output_0 [1, 4, 4, 32], nhwc)"))
        let swinGolden = try TensorComparison(Tensor(npyAt: heat), Tensor(npyAt: Fixtures.url("cam/swin/gradcam.npy")))
        #expect(swinGolden.sameShape && swinGolden.maxAbsoluteDifference <= 1e-4, "\(swinGolden)")
    }

    /// The Keras model takes `[N, 64, 64, 3]`: image files go in channels-last, and the heatmap
    /// is the library's on the same channels-last batch.
    @Test func kerasModelsTakeChannelsLastImages() throws {
        let inspect = try cli.cli(["inspect", keras])
        #expect(inspect.stdout.contains("functional_1/activation_17_1/mul -> functional_1/activation_17_1/mul:0 [1, 2, 2, 192] [conv, nhwc]  <- suggested"), "\(inspect.stdout)")

        let out = try Fixtures.temporaryDirectory()
        let image = Fixtures.url("images/photo420.jpg")
        let result = try cli.cli(["gradcam", keras, "--image", image.path, "--preprocess", "half", "--save-npy", "--out", out.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("using the suggested layer functional_1/activation_17_1/mul"))
        let heatmap = try Tensor(npyAt: out.appendingPathComponent("photo420.npy"))
        let prep = Preprocessing(resize: 73, crop: (64, 64), normalization: .half, layout: .nhwc)
        let x = try prep.tensor(RGBImage(contentsOf: image))
        #expect(x.shape == [64, 64, 3])
        let generator = try GradCAMHeatmapGenerator(
            model: Model(contentsOf: URL(fileURLWithPath: keras)), targetLayer: "functional_1/activation_17_1/mul")
        let expected = try generator.generate(x)
        #expect(try heatmap.scalars(as: Float.self) == expected.scalars(as: Float.self))

        let wrong = try cli.cli(["gradcam", keras, "--image", image.path, "--input-layout", "nchw", "--out", out.path, "--overwrite"])
        #expect(wrong.status != 0 && wrong.stderr.contains("expects shape [unk__347, 64, 64, 3], got [1, 3, 64, 3]"), "\(wrong.stderr)")
    }

    @Test func embedAuditAndCompareHeadsWithoutLayer() throws {
        let folder = try imageFolder(["rgb8.png", "gray.jpg"])
        let out = folder.appendingPathComponent("emb.npy")
        let embed = try cli.cli(["embed", swin, "--images", folder.path, "--out", out.path])
        #expect(embed.status == 0, "\(embed.stderr)")
        #expect(embed.stderr.contains("using the suggested layer norm"))
        // Swin's norm is [N, 4, 4, 32]: 32 channels pooled over 4x4 positions.
        let pooled = try Tensor(npyAt: out)
        #expect(pooled.shape == [2, 32])
        let named = try cli.cli(["embed", swin, "--images", folder.path, "--layer", "norm", "--layer-layout", "nhwc", "--out", out.path])
        #expect(named.status == 0 && !named.stderr.contains("suggested"), "\(named.stderr)")
        #expect(try Tensor(npyAt: out).scalars(as: Float.self) == pooled.scalars(as: Float.self))
        let forced = try cli.cli(["embed", swin, "--images", folder.path, "--layer", "norm", "--layer-layout", "nchw", "--out", out.path])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(try Tensor(npyAt: out).shape == [2, 4])

        let groups = folder.appendingPathComponent("groups.csv")
        try "file,group\nrgb8.png,a\ngray.jpg,b\n".write(to: groups, atomically: true, encoding: .utf8)
        let report = folder.appendingPathComponent("report")
        let audit = try cli.cli(["audit", resnet, "--images", folder.path, "--groups", groups.path, "--out", report.path])
        #expect(audit.status == 0, "\(audit.stderr)")
        #expect(audit.stderr.contains("using the suggested layer layer4"))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: report.appendingPathComponent("summary.json"))) as? [String: Any]
        #expect(summary?["layer"] as? String == "layer4")

        let heads = try cli.cli([
            "compare-heads", Fixtures.url("heads/two_head.onnx").path, "--head", "disease", "--head", "attribute",
            "--input", Fixtures.url("heads/input.npy").path,
        ])
        #expect(heads.status == 0, "\(heads.stderr)")
        #expect(heads.stderr.contains("using the suggested layer features.1"))
        #expect(heads.stdout.contains("disease vs attribute at features.1 (gradcam, threshold 0.5):"))
    }

    @Test func badLayoutsAreRefused() throws {
        let heat = try Fixtures.temporaryDirectory().appendingPathComponent("heat.npy").path
        let input = Fixtures.url("models/inputs/swin.npy").path
        let unknown = try cli.cli(["gradcam", swin, "--input", input, "--layer-layout", "nwhc", "--output", heat])
        #expect(unknown.status != 0 && unknown.stderr.contains("--layer-layout"), "\(unknown.stderr)")
        let tokens = try cli.cli(["gradcam", swin, "--input", input, "--layer", "norm", "--layer-layout", "tokens", "--output", heat])
        #expect(tokens.status != 0 && tokens.stderr.contains("a token layer must be [N, tokens, C], got shape [2, 4, 4, 32]"), "\(tokens.stderr)")
        let grid = try cli.cli(["gradcam", swin, "--input", input, "--layer-layout", "nhwc", "--token-grid", "0:4x4", "--output", heat])
        #expect(grid.status != 0 && grid.stderr.contains("--token-grid lays out tokens"), "\(grid.stderr)")
    }
}

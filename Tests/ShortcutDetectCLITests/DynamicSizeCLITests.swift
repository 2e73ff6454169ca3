import Foundation
import ShortcutDetect
import TestSupport
import Testing

/// Models that leave batch, height and width free (declared `[-1, 3, ?, ?]`, weights in
/// `Constant` nodes, as paddle2onnx writes them), and `--size` for every command that reads images.
@Suite struct DynamicSizeCLITests {
    let cli = CLITests()

    /// `Conv(3→4, 3×3, pad 1) → Relu → GlobalAveragePool → Flatten → Gemm(4→3)`, all weights in Constant nodes.
    func paddleStyleModel() throws -> URL {
        func values(_ count: Int, _ scale: Float) -> [Float] { (0..<count).map { Float(($0 * 7) % 11) * scale - 0.5 } }
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("paddle_style.onnx")
        try ONNXBuilder(
            opset: 13,
            nodes: [
                .init("Constant", [], ["conv.w"], tensors: ["value": .float("conv.w", dims: [4, 3, 3, 3], values(108, 0.1))]),
                .init("Constant", [], ["conv.b"], tensors: ["value": .float("conv.b", dims: [4], values(4, 0.2))]),
                .init("Constant", [], ["fc.w"], tensors: ["value": .float("fc.w", dims: [3, 4], values(12, 0.3))]),
                .init("Constant", [], ["fc.b"], tensors: ["value": .float("fc.b", dims: [3], values(3, 0.1))]),
                .init("Conv", ["x", "conv.w", "conv.b"], ["c"], name: "/backbone/conv/Conv", intLists: ["pads": [1, 1, 1, 1]]),
                .init("Relu", ["c"], ["r"], name: "/backbone/act/Relu"),
                .init("GlobalAveragePool", ["r"], ["p"], name: "/pool/GlobalAveragePool"),
                .init("Flatten", ["p"], ["f"], name: "/Flatten"),
                .init("Gemm", ["f", "fc.w", "fc.b"], ["logits"], name: "/fc/Gemm", ints: ["transB": 1]),
            ],
            inputs: [.init("x", shape: [-1, 3, "?", "?"])], outputs: [.init("logits", shape: [-1, 3])]
        ).write(to: url)
        return url
    }

    func imageFolder(_ names: [String]) throws -> URL {
        let folder = try Fixtures.temporaryDirectory()
        for name in names { try FileManager.default.copyItem(at: Fixtures.url("images/\(name)"), to: folder.appendingPathComponent(name)) }
        return folder
    }

    @Test func inspectAndRunTakeAnySize() throws {
        let model = try paddleStyleModel().path
        let inspect = try cli.cli(["inspect", model, "--size", "48x192"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        #expect(inspect.stdout.contains("parameters: 127"))
        #expect(inspect.stdout.contains("x: float32 [?, 3, ?, ?]"))
        #expect(inspect.stdout.contains("shape at batch 1, 48x192 input"))
        #expect(inspect.stdout.contains("backbone.act -> r [1, 4, 48, 192] [conv]  <- suggested"))

        let folder = try Fixtures.temporaryDirectory()
        let input = folder.appendingPathComponent("x.npy")
        let output = folder.appendingPathComponent("y.npy")
        let count = 2 * 3 * 48 * 192
        let scalars: [Float] = (0..<count).map { Float($0 % 13) / 13 - 0.5 }
        let x = try Tensor(shape: [2, 3, 48, 192], scalars: scalars)
        try x.writeNPY(to: input)
        let run = try cli.cli(["run", model, "--input", input.path, "--output", output.path])
        #expect(run.status == 0, "\(run.stderr)")
        let expected = try Executor(model: Model(contentsOf: URL(fileURLWithPath: model)), foldConstants: false).run(["x": x])["logits"]
        #expect(try Tensor(npyAt: output).scalars(as: Float.self) == expected?.scalars(as: Float.self))

        try Tensor(zeros: .float32, shape: [1, 4, 8, 8]).writeNPY(to: input)
        let channels = try cli.cli(["run", model, "--input", input.path, "--output", output.path])
        #expect(channels.status != 0 && channels.stderr.contains("input 'x': expects shape [?, 3, ?, ?], got [1, 4, 8, 8] (axis 1 must be 3)"))
    }

    @Test func gradcamTakesImagesAtTheRequestedSize() throws {
        let model = try paddleStyleModel().path
        let out = try Fixtures.temporaryDirectory()
        let image = Fixtures.url("images/rgb8.png").path
        let unsized = try cli.cli(["gradcam", model, "--image", image, "--layer", "backbone.act", "--out", out.path])
        #expect(unsized.status != 0)
        #expect(unsized.stderr.contains("input 'x': expects [?, 3, ?, ?]: its height is free, so an image size must be given; give --size HxW"))

        let sized = try cli.cli([
            "gradcam", model, "--image", image, "--layer", "backbone.act", "--size", "48x96", "--resize", "96", "--out", out.path, "--save-npy",
        ])
        #expect(sized.status == 0, "\(sized.stderr)")
        #expect(try Tensor(npyAt: out.appendingPathComponent("rgb8.npy")).shape == [48, 96])
        let overlay = try RGBImage(contentsOf: out.appendingPathComponent("rgb8.png"))
        #expect(overlay.width == 96 && overlay.height == 48)
        let square = try cli.cli(["gradcam", model, "--image", image, "--layer", "r", "--size", "40", "--out", out.path, "--save-npy", "--overwrite"])
        #expect(square.status == 0, "\(square.stderr)")
        #expect(try Tensor(npyAt: out.appendingPathComponent("rgb8.npy")).shape == [40, 40])
    }

    @Test func fixedSizeModelsKeepTheirSize() throws {
        let model = Fixtures.url("models/resnet_basic_ts17.onnx").path
        let out = try Fixtures.temporaryDirectory()
        let image = Fixtures.url("images/rgb8.png").path
        let same = try cli.cli(["gradcam", model, "--image", image, "--layer", "layer4", "--size", "64x64", "--out", out.path])
        #expect(same.status == 0, "\(same.stderr)")
        let other = try cli.cli(["gradcam", model, "--image", image, "--layer", "layer4", "--size", "32", "--out", out.path, "--overwrite"])
        #expect(other.status != 0 && other.stderr.contains("its height is fixed at 64, so the requested 32 does not fit"))
        let bad = try cli.cli(["gradcam", model, "--image", image, "--layer", "layer4", "--size", "64x", "--out", out.path, "--overwrite"])
        #expect(bad.status != 0 && bad.stderr.contains("--size"))
    }

    @Test func embedAndAuditTakeTheRequestedSize() throws {
        let model = try paddleStyleModel().path
        let names = ["rgb8.png", "gray.jpg", "photo420.jpg"]
        let folder = try imageFolder(names)
        let embeddings = folder.appendingPathComponent("emb.npy")
        let embed = try cli.cli(["embed", model, "--images", folder.path, "--layer", "backbone.act", "--size", "48x64", "--out", embeddings.path])
        #expect(embed.status == 0, "\(embed.stderr)")
        #expect(try Tensor(npyAt: embeddings).shape == [3, 4])
        let unsized = try cli.cli(["embed", model, "--images", folder.path, "--layer", "backbone.act", "--out", embeddings.path])
        #expect(unsized.status != 0 && unsized.stderr.contains("give --size HxW"))

        let groups = folder.appendingPathComponent("groups.csv")
        try "file,group\nrgb8.png,a\ngray.jpg,b\nphoto420.jpg,a\n".write(to: groups, atomically: true, encoding: .utf8)
        let report = try Fixtures.temporaryDirectory()
        let audit = try cli.cli([
            "audit", model, "--images", folder.path, "--groups", groups.path, "--layer", "backbone.act", "--size", "48x64",
            "--mask-rect", "0,0,16,48", "--out", report.path,
        ])
        #expect(audit.status == 0, "\(audit.stderr)")
        let summary = try String(contentsOf: report.appendingPathComponent("summary.json"), encoding: .utf8)
        #expect(summary.contains("crop 48x64"))
    }
}

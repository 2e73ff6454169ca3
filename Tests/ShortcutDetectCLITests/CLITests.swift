import Foundation
import ShortcutDetect
import TensorCore
import TestSupport
import Testing

/// End-to-end tests of the built `shortcut-detect` binary: what it prints, writes and refuses.
@Suite struct CLITests {
    struct Outcome {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs the binary built beside this test bundle, with `environment` added to this process's.
    func cli(_ arguments: [String], environment: [String: String] = [:]) throws -> Outcome {
        let folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let binary = folder.appendingPathComponent("shortcut-detect")
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    let model = Fixtures.url("models/resnet_basic_ts17.onnx").path
    let input = Fixtures.url("models/inputs/resnet_basic.npy").path

    @Test func versionMatchesTheLibraryConstantAndTheChangelog() throws {
        let result = try cli(["--version"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == shortcutDetectVersion)
        let changelog = try String(contentsOf: Fixtures.url("../CHANGELOG.md"), encoding: .utf8)
        #expect(changelog.contains("## \(shortcutDetectVersion) "), "CHANGELOG.md has no section for \(shortcutDetectVersion)")
    }

    @Test func inspectDescribesTheModel() throws {
        let result = try cli(["inspect", model])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("opset ai.onnx 17"))
        #expect(result.stdout.contains("input: float32 [batch, 3, 64, 64]"))
        #expect(result.stdout.contains("logits: float32 [batch, 10]"))
        #expect(result.stdout.contains("Conv 12"))
        #expect(result.stdout.contains("unsupported ops: none"))
        #expect(result.stdout.contains("layer4 -> /layer4/layer4.0/relu_1/Relu_output_0 [1, 32, 2, 2] [conv]  <- suggested"))
    }

    @Test func inspectFindsTransformerBlocks() throws {
        let result = try cli(["inspect", Fixtures.url("models/deit_dyn18.onnx").path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("blocks.1.norm1 -> "))
        #expect(result.stdout.contains("[tokens]  <- suggested"))
    }

    @Test func inspectListsUnsupportedOpsOnceWithoutFailing() throws {
        let folder = try Fixtures.temporaryDirectory()
        let url = folder.appendingPathComponent("unsupported.onnx")
        try ONNXBuilder(
            nodes: [
                .init("Upsize", ["x"], ["y"], name: "/up/Upsize"), .init("Relu", ["y"], ["z"]),
                .init("Upsize", ["z"], ["w"], name: "/up/Upsize_1"),
            ],
            inputs: [.init("x", dims: [1, 3])], outputs: [.init("w", dims: [1, 3])]
        ).write(to: url)
        let result = try cli(["inspect", url.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("unsupported ops: Upsize ×2 (/up/Upsize, /up/Upsize_1)\n"))
        #expect(result.stdout.components(separatedBy: "/up/Upsize_1").count == 2, "\(result.stdout)")
    }

    @Test func runWritesOutputsAndTapsThatMatchOnnxRuntime() throws {
        let folder = try Fixtures.temporaryDirectory()
        let output = folder.appendingPathComponent("logits.npy")
        let tapName = "/layer3/layer3.0/relu_1/Relu_output_0"
        let tap = folder.appendingPathComponent("layer3.npy")
        let result = try cli(["run", model, "--input", input, "--output", output.path, "--tap", "\(tapName)=\(tap.path)"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("argmax per sample: "))
        // Same tolerance and reason as the fixture golden tests.
        let logits = try TensorComparison(
            Tensor(npyAt: output), Tensor(npyAt: Fixtures.url("models/resnet_basic_ts17/logits.npy")))
        #expect(logits.sameShape && logits.relativeToLargest <= 1e-5, "\(logits)")
        let layer3 = try TensorComparison(
            Tensor(npyAt: tap),
            Tensor(npyAt: Fixtures.url("models/resnet_basic_ts17/_layer3_layer3.0_relu_1_Relu_output_0.npy")))
        #expect(layer3.sameShape && layer3.relativeToLargest <= 1e-5, "\(layer3)")
    }

    @Test func badInvocationsExplainThemselves() throws {
        let folder = try Fixtures.temporaryDirectory()
        let output = folder.appendingPathComponent("out.npy").path
        let missing = try cli(["run", "/nonexistent.onnx", "--input", input, "--output", output])
        #expect(missing.status != 0 && missing.stderr.contains("cannot read /nonexistent.onnx"))

        let wrongShape = folder.appendingPathComponent("wrong.npy")
        try Tensor(zeros: .float32, shape: [1, 3, 32, 32]).writeNPY(to: wrongShape)
        let shape = try cli(["run", model, "--input", wrongShape.path, "--output", output])
        #expect(shape.status != 0 && shape.stderr.contains("input 'input': expects shape [batch, 3, 64, 64], got [1, 3, 32, 32]"))

        let tap = try cli(["run", model, "--input", input, "--output", output, "--tap", "layer9=\(output)"])
        #expect(tap.status != 0 && tap.stderr.contains("no tensor named 'layer9'"))

        let notNumpy = folder.appendingPathComponent("input.npy")
        try Data("not numpy".utf8).write(to: notNumpy)
        let npy = try cli(["run", model, "--input", notNumpy.path, "--output", output])
        #expect(npy.status != 0 && npy.stderr.contains("not a NumPy .npy file"))
    }

    @Test func gradcamWritesHeatmapsAndRawMapsThatMatchPytorchGradCAM() throws {
        let folder = try Fixtures.temporaryDirectory()
        let heat = folder.appendingPathComponent("heat.npy")
        let raw = folder.appendingPathComponent("raw.npy")
        let vit = Fixtures.url("models/vit_dyn25.onnx").path
        let images = Fixtures.url("models/inputs/vit.npy").path
        let result = try cli([
            "gradcam", vit, "--input", images, "--layer", "encoder.layers[-1].ln_1", "--method", "gradcam++",
            "--output", heat.path, "--raw", raw.path,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("gradcam++ at encoder.layers[-1].ln_1 -> layer_norm_2: classes 1, 1"))
        // Same tolerances and reasons as CAMGoldenTests.
        let heatmap = try TensorComparison(Tensor(npyAt: heat), Tensor(npyAt: Fixtures.url("cam/vit/gradcampp.npy")))
        #expect(heatmap.sameShape && heatmap.maxAbsoluteDifference <= 1e-4, "\(heatmap)")
        let rawMap = try TensorComparison(Tensor(npyAt: raw), Tensor(npyAt: Fixtures.url("cam/vit/gradcampp_raw.npy")))
        #expect(rawMap.sameShape && rawMap.relativeToLargest <= 1e-4, "\(rawMap)")

        let guided = try cli(["gradcam", vit, "--input", images, "--method", "guided-backprop", "--class", "1,1", "--output", heat.path])
        #expect(guided.status == 0, "\(guided.stderr)")
        #expect(try Tensor(npyAt: heat).shape == [2, 32, 32, 3])
    }

    @Test func gradcamRefusesWhatItCannotDo() throws {
        let folder = try Fixtures.temporaryDirectory()
        let heat = folder.appendingPathComponent("heat.npy").path
        let unknown = try cli(["gradcam", model, "--input", input, "--layer", "layer9", "--output", heat])
        #expect(unknown.status != 0 && unknown.stderr.contains("no layer named 'layer9'") && unknown.stderr.contains("layer4"))
        #expect(unknown.stderr.contains("`shortcut-detect inspect --layers` lists module paths"))
        let method = try cli(["gradcam", model, "--input", input, "--layer", "layer4", "--method", "fullgrad", "--output", heat])
        #expect(method.status != 0 && method.stderr.contains("fullgrad"))
        let flat = try Fixtures.temporaryDirectory().appendingPathComponent("flat.onnx")
        try ONNXBuilder(nodes: [.init("Relu", ["x"], ["y"])], inputs: [.init("x", dims: [1, 3])], outputs: [.init("y", dims: [1, 3])]).write(to: flat)
        let noLayer = try cli(["gradcam", flat.path, "--input", input, "--output", heat])
        #expect(noLayer.status != 0 && noLayer.stderr.contains("no --layer given and `inspect` has no layer to suggest; give --layer"), "\(noLayer.stderr)")
        let classes = try cli(["gradcam", model, "--input", input, "--layer", "layer4", "--class", "1,2,3", "--output", heat])
        #expect(classes.status != 0 && classes.stderr.contains("3 classes for 2 samples"))
        let range = try cli(["gradcam", model, "--input", input, "--layer", "layer4", "--class", "10", "--output", heat])
        #expect(range.status != 0 && range.stderr.contains("class 10 is out of range"))
    }

    @Test func inspectListsModulePaths() throws {
        let result = try cli(["inspect", model, "--layers"])
        #expect(result.stdout.contains("layers (module path -> output tensor):\n  conv1 -> "))
        #expect(result.stdout.contains("  layer4.0 -> /layer4/layer4.0/relu_1/Relu_output_0"))
    }

    @Test func gradcamOnImageFilesWritesOverlaysHeatmapsAndPanels() throws {
        let out = try Fixtures.temporaryDirectory().appendingPathComponent("out")
        let labels = out.deletingLastPathComponent().appendingPathComponent("labels.txt")
        try (0..<10).map { "class\($0)" }.joined(separator: "\n").write(to: labels, atomically: true, encoding: .utf8)
        let result = try cli([
            "gradcam", model, "--image", Fixtures.url("images/rgb8.png").path, "--image", Fixtures.url("images/photo420.jpg").path,
            "--layer", "layer4", "--resize", "73", "--labels", labels.path, "--out", out.path, "--save-npy", "--panel",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("rgb8.png: class3 "))
        #expect(result.stdout.contains("wrote 2 overlay(s)"))
        // The overlay equals pytorch-grad-cam's show_cam_on_image output (see WholePathTests).
        let overlay = try RGBImage(contentsOf: out.appendingPathComponent("rgb8.png"))
        #expect(overlay == (try RGBImage(contentsOf: Fixtures.url("images/overlays/resnet_basic_rgb8.png"))))
        #expect(try Tensor(npyAt: out.appendingPathComponent("photo420.npy")).shape == [64, 64])
        let panel = try RGBImage(contentsOf: out.appendingPathComponent("rgb8_panel.png"))
        #expect(panel.width > 3 * 64 && panel.height > 64)

        let folder = try Fixtures.temporaryDirectory()
        for name in ["gray.jpg", "palette.png", "notes.txt"] {
            let source = Fixtures.url("images/\(name)")
            try FileManager.default.copyItem(at: FileManager.default.fileExists(atPath: source.path) ? source : labels, to: folder.appendingPathComponent(name))
        }
        // A folder of results is replaced only when asked; the old results stay until the new are complete.
        let again = try cli(["gradcam", model, "--images", folder.path, "--layer", "layer4", "--top-k", "2", "--out", out.path])
        #expect(again.status != 0 && again.stderr.contains("already holds results; pass --overwrite"), "\(again.stderr)")
        let topK = try cli(["gradcam", model, "--images", folder.path, "--layer", "layer4", "--top-k", "2", "--out", out.path, "--overwrite"])
        #expect(topK.status == 0, "\(topK.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("rgb8.png").path))
        #expect(topK.stdout.contains("wrote 2 overlay(s)"))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("gray_top2.png").path))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("palette_top1.png").path))
    }

    @Test func gradcamNamesBrokenImages() throws {
        let out = try Fixtures.temporaryDirectory()
        let broken = try cli(["gradcam", model, "--image", Fixtures.url("images/truncated.jpg").path, "--layer", "layer4", "--out", out.path])
        #expect(broken.status != 0 && broken.stderr.contains("truncated.jpg is corrupt or truncated"))
        let preset = try cli(["gradcam", model, "--image", Fixtures.url("images/rgb8.png").path, "--layer", "layer4", "--preprocess", "foo", "--out", out.path])
        #expect(preset.status != 0 && preset.stderr.contains("--preprocess must be imagenet, half or none"))
        let both = try cli(["gradcam", model, "--input", input, "--image", "x.png", "--layer", "layer4", "--out", out.path])
        #expect(both.status != 0 && both.stderr.contains("exactly one of --input, --image or --images"))
    }

    @Test(arguments: KernelLevel.supported)
    func benchNamesTheKernelLevelItRan(_ level: KernelLevel) throws {
        let result = try cli(["bench", model, "--input", input, "--runs", "1"], environment: ["SHORTCUT_DETECT_KERNELS": level.rawValue])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("\"kernels\": \"\(level)\""), "\(result.stdout)")
        #expect(result.stdout.contains("\"blas_core\": "))
    }

    @Test func aKernelLevelThatDoesNotExistIsAnError() throws {
        let out = try Fixtures.temporaryDirectory().appendingPathComponent("logits.npy").path
        let result = try cli(["run", model, "--input", input, "--output", out], environment: ["SHORTCUT_DETECT_KERNELS": "avx3"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("SHORTCUT_DETECT_KERNELS=avx3 is not a kernel level: use avx512, avx2 or portable"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test(.enabled(if: !KernelLevel.avx512.isSupported, "this CPU runs every level"))
    func aKernelLevelThisCPULacksIsAnError() throws {
        let result = try cli(["bench", model, "--input", input, "--runs", "1"], environment: ["SHORTCUT_DETECT_KERNELS": "avx512"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("this CPU does not run the avx512 kernels"), "\(result.stderr)")
    }
}

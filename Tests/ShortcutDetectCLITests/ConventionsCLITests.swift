import Foundation
import ShortcutDetect
import TensorCore
import TestSupport
import Testing

/// The command line's conventions, through the built binary: `--json`, `-` for standard input and
/// output, `--quiet` and `--verbose`, exit codes 0, 1 and 64, and help text written for a terminal.
@Suite struct ConventionsCLITests {
    struct Outcome {
        let status: Int32
        let stdout: Data
        let stderr: String
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    let model = Fixtures.url("models/resnet_basic_ts17.onnx").path
    let input = Fixtures.url("models/inputs/resnet_basic.npy").path
    let audit = Fixtures.url("audit")
    static let commands = ["inspect", "run", "gradcam", "audit", "merge", "embed", "detect", "compare-heads", "bench"]

    /// Runs the binary with standard input read from `stdin` (else `/dev/null`) and its output kept
    /// as bytes; `environment` is added to this process's.
    func cli(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:], executable: String? = nil) throws -> Outcome {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let outURL = folder.appendingPathComponent("stdout")
        let errURL = folder.appendingPathComponent("stderr")
        try Data().write(to: outURL)
        try Data().write(to: errURL)
        let process = Process()
        process.executableURL = executable.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("shortcut-detect")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: stdin ?? "/dev/null"))
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus, stdout: try Data(contentsOf: outURL),
            stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
    }

    func object(_ outcome: Outcome) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: outcome.stdout) as? [String: Any], "\(outcome.text)")
    }

    /// A groups.csv of `count` of the audit fixture's images, spread evenly (both groups, both labels).
    func smallAudit(_ count: Int, in folder: URL) throws -> URL {
        let lines = try String(contentsOf: audit.appendingPathComponent("groups.csv"), encoding: .utf8).split(separator: "\n")
        let rows = Array(lines.dropFirst())
        let picked = stride(from: 0, to: rows.count, by: rows.count / count).prefix(count).map { rows[$0] }
        let url = folder.appendingPathComponent("groups.csv")
        try (([lines[0]] + picked).joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    // MARK: - --json

    @Test func inspectJSONHoldsTheModelsParts() throws {
        let result = try cli(["inspect", model, "--json", "--layers", "--all-tensors"])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
        let root = try object(result)
        #expect(root["opsets"] as? [String: Int] == ["ai.onnx": 17])
        let inputs = try #require(root["inputs"] as? [[String: Any]])
        #expect(inputs.count == 1 && inputs[0]["name"] as? String == "input" && inputs[0]["type"] as? String == "float32")
        let shape = try #require(inputs[0]["shape"] as? [Any])
        #expect(shape.first as? String == "batch" && shape.dropFirst().compactMap { $0 as? Int } == [3, 64, 64])
        #expect((root["outputs"] as? [[String: Any]])?.first?["name"] as? String == "logits")
        let ops = try #require(root["ops"] as? [[String: Any]])
        #expect(ops.contains { $0["op"] as? String == "Conv" && $0["count"] as? Int == 12 })
        #expect(ops.reduce(0) { $0 + ($1["count"] as? Int ?? 0) } == root["nodes"] as? Int)
        #expect((root["unsupported"] as? [Any])?.isEmpty == true)
        let suggested = try #require(root["suggested"] as? [String: Any])
        #expect(suggested["names"] as? [String] == ["layer4"] && suggested["shape"] as? [Int] == [1, 32, 2, 2])
        #expect(suggested["tensor"] as? String == "/layer4/layer4.0/relu_1/Relu_output_0" && suggested["layout"] as? String == "nchw")
        let layers = try #require(root["layers"] as? [[String: Any]])
        #expect(layers.filter { $0["suggested"] as? Bool == true }.count == 1)
        #expect(layers.allSatisfy { ($0["shape"] as? [Int])?.count == 4 && $0["kind"] as? String == "conv" })
        #expect((root["modules"] as? [[String: String]])?.contains { $0["path"] == "layer4.0" } == true)
        #expect((root["tensors"] as? [[String: String]])?.contains { $0["name"] == "logits" && $0["op"] == "Gemm" } == true)
    }

    @Test func inspectJSONCountsUnsupportedOps() throws {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("unsupported.onnx")
        try ONNXBuilder(
            nodes: [.init("Upsize", ["x"], ["y"], name: "/up/Upsize"), .init("Upsize", ["y"], ["z"], name: "/up/Upsize_1")],
            inputs: [.init("x", dims: [1, 3])], outputs: [.init("z", dims: [1, 3])]
        ).write(to: url)
        let result = try cli(["inspect", url.path, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let unsupported = try #require(try object(result)["unsupported"] as? [[String: Any]])
        #expect(unsupported.count == 1 && unsupported[0]["op"] as? String == "Upsize" && unsupported[0]["count"] as? Int == 2)
        #expect(unsupported[0]["nodes"] as? [String] == ["/up/Upsize", "/up/Upsize_1"])
    }

    @Test func gradcamJSONOnABatchGivesOnnxRuntimesProbabilities() throws {
        let heat = try Fixtures.temporaryDirectory().appendingPathComponent("heat.npy")
        let result = try cli(["gradcam", model, "--input", input, "--layer", "layer4", "--output", heat.path, "--json"])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
        let root = try object(result)
        #expect(root["method"] as? String == "gradcam" && root["output"] as? String == "logits")
        #expect(root["layers"] as? [[String: String]] == [["request": "layer4", "tensor": "/layer4/layer4.0/relu_1/Relu_output_0"]])
        #expect(root["outputs"] as? [String] == [heat.path])
        // The oracle: onnxruntime's logits for this input, softmaxed here.
        let logits = try Tensor(npyAt: Fixtures.url("models/resnet_basic_ts17/logits.npy")).scalars(as: Float.self).map(Double.init)
        let images = try #require(root["images"] as? [[String: Any]])
        #expect(images.count == 2)
        for (index, image) in images.enumerated() {
            let row = Array(logits[index * 10..<(index + 1) * 10])
            let exponentials = row.map { exp($0 - (row.max() ?? 0)) }
            let expected = exponentials.map { $0 / exponentials.reduce(0, +) }
            let order = expected.indices.sorted { expected[$0] > expected[$1] }
            let top = try #require(image["top"] as? [[String: Any]])
            #expect(image["name"] as? String == "#\(index)")
            #expect(top.compactMap { $0["class"] as? Int } == Array(order.prefix(3)))
            #expect(image["explained"] as? [Int] == [order[0]])
            for entry in top {
                let c = try #require(entry["class"] as? Int)
                // The fixture's logits agree with onnxruntime to 1e-5 of the largest (FixtureGoldenTests);
                // a softmax moves such a difference by at most as much.
                #expect(abs((entry["probability"] as? Double ?? -1) - expected[c]) <= 1e-5)
            }
        }
    }

    @Test func gradcamJSONOnImagesListsEveryFileWritten() throws {
        // --out must be new (or a folder shortcut-detect wrote): the labels live beside it.
        let folder = try Fixtures.temporaryDirectory()
        let out = folder.appendingPathComponent("overlays")
        let labels = folder.appendingPathComponent("labels.txt")
        try (0..<10).map { "class\($0)" }.joined(separator: "\n").write(to: labels, atomically: true, encoding: .utf8)
        let result = try cli([
            "gradcam", model, "--image", Fixtures.url("images/rgb8.png").path, "--image", Fixtures.url("images/photo420.jpg").path,
            "--layer", "layer4", "--top-k", "2", "--labels", labels.path, "--save-npy", "--panel", "--out", out.path, "--json",
        ])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
        let images = try #require(try object(result)["images"] as? [[String: Any]])
        #expect(images.compactMap { $0["name"] as? String } == ["rgb8.png", "photo420.jpg"])
        for image in images {
            let top = try #require(image["top"] as? [[String: Any]])
            let probabilities = top.compactMap { $0["probability"] as? Double }
            #expect(top.count == 2 && probabilities == probabilities.sorted(by: >) && probabilities.allSatisfy { (0...1).contains($0) })
            #expect(top.allSatisfy { $0["label"] as? String == "class\($0["class"] as? Int ?? -1)" })
            #expect(image["explained"] as? [Int] == top.compactMap { $0["class"] as? Int })
            let stem = ((image["name"] as? String ?? "") as NSString).deletingPathExtension
            let expected = ["_top1.png", "_top1.npy", "_top1_panel.png", "_top2.png", "_top2.npy", "_top2_panel.png"]
            #expect(image["outputs"] as? [String] == expected.map { out.appendingPathComponent(stem + $0).path })
            for file in expected { #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(stem + file).path)) }
        }
    }

    @Test func auditAndMergeJSONCarryTheSummaryTheyWrote() throws {
        let folder = try Fixtures.temporaryDirectory()
        let groups = try smallAudit(8, in: folder)
        func run(_ name: String, _ extra: [String]) throws -> (Outcome, URL) {
            let report = folder.appendingPathComponent(name)
            let result = try cli([
                "audit", audit.appendingPathComponent("shortcut.onnx").path, "--images", audit.appendingPathComponent("images").path,
                "--groups", groups.path, "--layer", "features.2", "--preprocess", "half", "--faithfulness", "0",
                "--batch-size", "4", "--out", report.path, "--json",
            ] + extra)
            return (result, report)
        }
        for (name, extra, shard) in [("whole", [String](), nil as String?), ("one", ["--shard", "1/2"], "1/2"), ("two", ["--shard", "2/2"], "2/2")] {
            let (result, report) = try run(name, extra)
            #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
            let root = try object(result)
            #expect(root["report"] as? String == report.path && root["images"] as? Int == (shard == nil ? 8 : 4))
            #expect(shard.map { root["shard"] as? String == $0 } ?? (root["shard"] is NSNull))
            let written = try JSONSerialization.jsonObject(with: Data(contentsOf: report.appendingPathComponent("summary.json")))
            #expect((root["summary"] as? NSDictionary)?.isEqual(written) == true)
        }
        let merged = folder.appendingPathComponent("merged")
        let result = try cli(["merge", folder.appendingPathComponent("one").path, folder.appendingPathComponent("two").path, "--out", merged.path, "--json"])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
        let root = try object(result)
        #expect(root["images"] as? Int == 8 && root["shard"] is NSNull)
        let whole = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("whole/summary.json")))
        #expect((root["summary"] as? NSDictionary)?.isEqual(whole) == true, "merge's summary is the whole audit's")
    }

    // MARK: - - for standard input and output

    @Test func dashIsStandardInputAndOutputForNPY() throws {
        let folder = try Fixtures.temporaryDirectory()
        let file = folder.appendingPathComponent("logits.npy")
        #expect(try cli(["run", model, "--input", input, "--output", file.path]).status == 0)
        let piped = try cli(["run", model, "--input", "-", "--output", "-"], stdin: input)
        #expect(piped.status == 0, "\(piped.stderr)")
        let logitsFile = try Data(contentsOf: file)
        #expect(piped.stdout == logitsFile, "the .npy on standard output is the file's bytes")
        #expect(piped.stderr.contains("wrote logits float32[2, 10] to standard output"), "messages move to standard error")

        let tap = "/layer3/layer3.0/relu_1/Relu_output_0"
        let tapped = try cli(["run", model, "--input", "input=-", "--output", file.path, "--tap", "\(tap)=-", "-q"], stdin: input)
        #expect(tapped.status == 0 && tapped.stderr.isEmpty, "\(tapped.stderr)")
        // Same tolerance and reason as the fixture golden tests.
        let layer3 = try TensorComparison(
            Tensor(npyData: tapped.stdout), Tensor(npyAt: Fixtures.url("models/resnet_basic_ts17/_layer3_layer3.0_relu_1_Relu_output_0.npy")))
        #expect(layer3.sameShape && layer3.relativeToLargest <= 1e-5, "\(layer3)")

        let heat = folder.appendingPathComponent("heat.npy")
        #expect(try cli(["gradcam", model, "--input", input, "--layer", "layer4", "--output", heat.path]).status == 0)
        let heatmaps = try cli(["gradcam", model, "--input", "-", "--layer", "layer4", "--output", "-"], stdin: input)
        let heatFile = try Data(contentsOf: heat)
        #expect(heatmaps.status == 0 && heatmaps.stdout == heatFile, "\(heatmaps.stderr)")

        let images = audit.appendingPathComponent("images").path
        let embeddings = folder.appendingPathComponent("emb.npy")
        let embed = ["embed", audit.appendingPathComponent("shortcut.onnx").path, "--images", images, "--layer", "features.2", "--preprocess", "half"]
        #expect(try cli(embed + ["--out", embeddings.path]).status == 0)
        let streamed = try cli(embed + ["--out", "-"])
        let embeddingsFile = try Data(contentsOf: embeddings)
        #expect(streamed.status == 0 && streamed.stdout == embeddingsFile, "\(streamed.stderr)")

        let bench = try cli(["bench", model, "--input", "-", "--runs", "1"], stdin: input)
        #expect(bench.status == 0 && bench.text.contains("\"median_ms\""), "\(bench.stderr)")

        // detect reads standard input by position (there is no .files.txt beside it).
        let groups = folder.appendingPathComponent("groups.csv")
        let rows = try String(contentsOf: audit.appendingPathComponent("groups.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
        let byName = Dictionary(rows.map { ($0.split(separator: ",")[0], $0.split(separator: ",")[1]) }, uniquingKeysWith: { a, _ in a })
        let names = try String(contentsOf: folder.appendingPathComponent("emb.files.txt"), encoding: .utf8).split(separator: "\n")
        try ("group\n" + names.map { "\(byName[$0] ?? "?")\n" }.joined()).write(to: groups, atomically: true, encoding: .utf8)
        let fromFile = try cli(["detect", "--embeddings", embeddings.path, "--groups", groups.path, "--methods", "probe", "--out", folder.appendingPathComponent("a").path])
        let fromInput = try cli(["detect", "--embeddings", "-", "--groups", groups.path, "--methods", "probe", "--out", folder.appendingPathComponent("b").path], stdin: embeddings.path)
        #expect(fromFile.status == 0 && fromInput.status == 0, "\(fromFile.stderr) \(fromInput.stderr)")
        let detectA = try Data(contentsOf: folder.appendingPathComponent("a/detect.json"))
        let detectB = try Data(contentsOf: folder.appendingPathComponent("b/detect.json"))
        #expect(detectA == detectB)
    }

    @Test func standardStreamsAreUsedOnceAndWithinTheBudget() throws {
        let twice = try cli(["run", model, "--input", input, "--output", "-", "--tap", "/layer3/layer3.0/relu_1/Relu_output_0=-"])
        #expect(twice.status == 64 && twice.stderr.contains("only one of --output, --tap may use standard output"), "\(twice.stderr)")
        let json = try cli(["gradcam", model, "--input", input, "--output", "-", "--json"])
        #expect(json.status == 64 && json.stderr.contains("only one of --output, --json may use standard output"), "\(json.stderr)")
        // A piped input counts against --max-memory as it arrives, like a file's declared size does.
        let big = try Fixtures.temporaryDirectory().appendingPathComponent("big.npy")
        try Tensor(zeros: .float32, shape: [1, 3, 512, 512]).writeNPY(to: big)
        let refused = try cli(["run", model, "--input", "-", "--output", "-", "--max-memory", "1M"], stdin: big.path)
        #expect(refused.status == 1 && refused.stderr.hasPrefix("Error: ") && refused.stderr.contains("standard input"), "\(refused.stderr)")
        #expect(refused.stdout.isEmpty)
    }

    #if os(Linux)
    /// A terminal is neither typed a .npy nor shown one: util-linux's `script` gives the binary one.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script")))
    func terminalsAreRefusedAsNPYStreams() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("shortcut-detect").path
        for (arguments, message) in [
            ("run \(model) --input \(input) --output -", "--output - uses standard output, which is a terminal"),
            ("run \(model) --input - --output /dev/null", "--input - uses standard input, which is a terminal"),
        ] {
            let result = try cli(["-qec", "'\(binary)' \(arguments)", "/dev/null"], executable: "/usr/bin/script")
            #expect(result.status == 64 && result.text.contains(message), "\(result.text)")
        }
    }
    #endif

    // MARK: - --quiet and --verbose

    @Test func quietPrintsNothingOnSuccess() throws {
        let folder = try Fixtures.temporaryDirectory()
        let shortcut = audit.appendingPathComponent("shortcut.onnx").path
        let images = audit.appendingPathComponent("images").path
        let embeddings = folder.appendingPathComponent("emb.npy").path
        let heads = Fixtures.url("heads")
        let groups = try smallAudit(8, in: folder)
        let runs: [[String]] = [
            ["inspect", model],
            ["run", model, "--input", input, "--output", folder.appendingPathComponent("out.npy").path],
            ["gradcam", model, "--input", input, "--output", folder.appendingPathComponent("heat.npy").path],  // suggested layer
            ["gradcam", shortcut, "--images", images, "--preprocess", "half", "--out", folder.appendingPathComponent("overlays").path],
            ["audit", shortcut, "--images", images, "--groups", groups.path, "--preprocess", "half", "--faithfulness", "0", "--out", folder.appendingPathComponent("report").path],
            ["merge", folder.appendingPathComponent("report").path, "--out", folder.appendingPathComponent("merged").path],
            ["embed", shortcut, "--images", images, "--preprocess", "half", "--out", embeddings],
            ["detect", "--embeddings", Fixtures.url("detectors/nonlinear/embeddings.npy").path, "--groups", Fixtures.url("detectors/nonlinear/groups.csv").path, "--methods", "probe", "--out", folder.appendingPathComponent("detect").path],
            ["compare-heads", heads.appendingPathComponent("two_head.onnx").path, "--head", "disease", "--head", "attribute", "--input", heads.appendingPathComponent("input.npy").path],
        ]
        #expect(Set(runs.map(\.[0])) == Set(Self.commands).subtracting(["bench"]))
        for arguments in runs {
            let loud = try cli(arguments)
            #expect(loud.status == 0 && !loud.stdout.isEmpty, "\(arguments[0]): \(loud.stderr)")
            // The commands that write a folder refuse to replace the first run's without --overwrite.
            let replaces = ["gradcam", "audit", "merge", "detect"].contains(arguments[0]) && arguments.contains("--out")
            let quiet = try cli(arguments + ["--quiet"] + (replaces ? ["--overwrite"] : []))
            #expect(quiet.status == 0 && quiet.stdout.isEmpty && quiet.stderr.isEmpty, "\(arguments[0]) --quiet: \(quiet.text) \(quiet.stderr)")
        }
        // bench's JSON line is its data: --quiet keeps it, and nothing else.
        let bench = try cli(["bench", model, "--input", input, "--runs", "1", "-q"])
        #expect(bench.status == 0 && bench.text.hasPrefix("{\"median_ms\"") && bench.stderr.isEmpty, "\(bench.stderr)")
        let failing = try cli(["run", "/nonexistent.onnx", "--input", input, "--output", folder.appendingPathComponent("x.npy").path, "-q"])
        #expect(failing.status == 1 && failing.stderr == "Error: cannot read /nonexistent.onnx: No such file or directory\n", "errors still print")
        let both = try cli(["inspect", model, "-q", "-v"])
        #expect(both.status == 64 && both.stderr.contains("--quiet and --verbose do not go together"))
    }

    @Test func verboseAddsTimingsOnStandardError() throws {
        let out = try Fixtures.temporaryDirectory().appendingPathComponent("o.npy").path
        let plain = try cli(["run", model, "--input", input, "--output", out])
        let verbose = try cli(["run", model, "--input", input, "--output", out, "--verbose"])
        #expect(verbose.status == 0 && verbose.stdout == plain.stdout, "standard output is unchanged")
        for step in ["read \(model) in ", "built the executor in ", "ran the forward pass in ", "done in "] {
            #expect(verbose.stderr.contains(step), "\(verbose.stderr)")
        }
        #expect(plain.stderr.isEmpty)
    }

    // MARK: - Exit codes

    @Test func exitCodesAreZeroOneAndSixtyFour() throws {
        let folder = try Fixtures.temporaryDirectory()
        let out = folder.appendingPathComponent("o.npy").path
        #expect(try cli(["inspect", model]).status == 0)
        #expect(try cli(["--version"]).status == 0)
        #expect(try cli(["gradcam", "--help"]).status == 0)

        // 1: the work failed; one line of ours, no usage.
        let notNumpy = folder.appendingPathComponent("bad.npy")
        try Data("not numpy".utf8).write(to: notNumpy)
        for arguments in [
            ["run", "/nonexistent.onnx", "--input", input, "--output", out],
            ["run", model, "--input", notNumpy.path, "--output", out],
            ["gradcam", model, "--input", input, "--layer", "layer9", "--output", out],
        ] {
            let result = try cli(arguments)
            #expect(result.status == 1 && result.stderr.hasPrefix("Error: ") && !result.stderr.contains("Usage:"), "\(arguments): \(result.stderr)")
        }

        // 64: the command line is wrong, found while parsing, while validating or once the model was read;
        // each shows its own command's usage, never the top-level one.
        let empty = try Fixtures.temporaryDirectory()
        for (arguments, message) in [
            (["run", model, "--input", input, "--output", out, "--bogus"], "Unknown option '--bogus'"),
            (["run", model, "--input", input], "Missing expected argument '--output <PATH>'"),
            (["gradcam", model, "--input", input, "--output", out, "--alpha", "2"], "--alpha must be a number from 0.0 to 1.0"),
            (["gradcam", model, "--input", input, "--method", "fullgrad", "--output", out], "fullgrad"),
            (["gradcam", model, "--input", input, "--image", "x.png", "--out", folder.path], "give exactly one of --input, --image or --images"),
            (["gradcam", model, "--images", empty.path, "--layer", "layer4", "--out", folder.path], "no .png, .jpg or .jpeg files in"),
            (["audit", model, "--images", empty.path, "--groups", "g.csv", "--out", folder.path, "--maps", "sharp"], "--maps must be normalized or raw"),
            (["inspect", model, "--size", "0x0"], "--size"),
        ] {
            let result = try cli(arguments)
            #expect(result.status == 64, "\(arguments): \(result.status) \(result.stderr)")
            #expect(result.stderr.hasPrefix("Error: ") && result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("Usage: shortcut-detect \(arguments[0]) "), "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("See 'shortcut-detect \(arguments[0]) --help'"), "\(arguments): \(result.stderr)")
            #expect(!result.stderr.contains("<subcommand>"), "\(arguments): \(result.stderr)")
        }
        let help = try cli(["--help"])
        #expect(help.text.contains("64 on a usage error") && help.text.contains("1 when the work fails") && help.text.contains("0 on success"))
    }

    // MARK: - Help text

    /// Lines of `help` that end a paragraph's line early: the next line, of the same paragraph,
    /// starts with a word that fit on this one (a line break typed into the source).
    static func raggedLines(_ help: String, width: Int) -> [String] {
        let lines = help.components(separatedBy: "\n")
        var ragged: [String] = []
        var inUsage = false
        for (line, next) in zip(lines, lines.dropFirst()) {
            if line.hasPrefix("USAGE:") { inUsage = true } else if line.isEmpty { inUsage = false }
            guard !inUsage, !line.isEmpty, !next.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
            let indent = next.prefix { $0 == " " }.count
            guard indent == textColumn(line) else { continue }  // a new entry, not a continuation
            let word = next.dropFirst(indent).prefix { $0 != " " }
            if line.count + 1 + word.count < width { ragged.append("\(line)⏎\(next)") }
        }
        return ragged
    }

    /// Where the text of a help line starts: an option's or subcommand's row (indented by 2) has its
    /// help at ArgumentParser's column 26, or none when the label is too long for it (then the help
    /// starts on the next line: -1); other lines start at their indentation.
    static func textColumn(_ line: String) -> Int {
        let indent = line.prefix { $0 == " " }.count
        guard indent == 2 else { return indent }
        let characters = Array(line)
        return characters.count > 26 && characters[25] == " " && characters[26] != " " ? 26 : -1
    }

    @Test func theRaggedLineCheckFindsAHardWrap() {
        let hardWrapped = "This paragraph was wrapped by hand at a\nshort width, and the terminal is wide."
        #expect(Self.raggedLines(hardWrapped, width: 80).count == 1)
        #expect(Self.raggedLines("  --alpha <A>             Heatmap weight in the overlay, a number\n                          from 0 to 1.", width: 80).count == 1)
        #expect(Self.raggedLines("  --alpha <A>             Heatmap weight in the overlay.\n  --colormap <NAME>       Overlay colormap.", width: 80).isEmpty)
        #expect(Self.raggedLines("  --road-percentiles <P,P,...>\n                          The percentiles.", width: 80).isEmpty)
    }

    @Test(arguments: [[String]()] + commands.map { [$0] })
    func helpIsWrittenForATerminal(_ command: [String]) throws {
        for width in [60, 80, 100, 140] {
            let result = try cli(command + ["--help"], environment: ["COLUMNS": "\(width)", "LINES": "50"])
            #expect(result.status == 0)
            let ragged = Self.raggedLines(result.text, width: width)
            #expect(ragged.isEmpty, "ragged at \(width) columns:\n\(ragged.joined(separator: "\n"))")
            // Each enumeration's values are listed once, by ArgumentParser's "(values: ...)".
            for entry in result.text.components(separatedBy: "\n  -").map({ $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }) {
                guard let values = entry.range(of: "(values: ") else { continue }
                let listed = entry[values.upperBound...].prefix { $0 != ")" && $0 != ";" }.components(separatedBy: ", ")
                let before = entry[..<values.lowerBound].split { !$0.isLetter && !$0.isNumber && $0 != "+" && $0 != "-" }.map(String.init)
                #expect(listed.count < 3 || !listed.allSatisfy(before.contains), "values listed twice: \(entry)")
            }
        }
    }

    @Test func usageLinesShowWhatIsRequired() throws {
        let gradcam = try cli(["gradcam", "--help"]).text
        #expect(gradcam.contains("USAGE: shortcut-detect gradcam <model> (--image <PATH> ... | --images <DIR>) --out <DIR> [<options>]"))
        #expect(gradcam.contains("       shortcut-detect gradcam <model> --input <PATH> --output <PATH> [<options>]"))
        let audit = try cli(["audit", "--help"]).text
        #expect(audit.contains("USAGE: shortcut-detect audit [<options>] <model> --images <DIR> --groups <CSV> --out <REPORT>"))
        let heads = try cli(["compare-heads", "--help"]).text
        #expect(heads.contains("--head <NAME> --head <NAME> ... (--input <PATH> | --image <PATH> ... | --images <DIR>)"))
    }
}

import Foundation
import ShortcutDetect
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The crash classes of issue 13 (C1-C7) and the small ones, run through the built binary: each
/// must end in one line of our own error, within a minute and under 1 GiB of resident memory.
@Suite struct HostileInputTests {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("shortcut-detect")
    let model = Fixtures.url("models/resnet_basic_ts17.onnx").path
    let input = Fixtures.url("models/inputs/resnet_basic.npy").path
    /// The most a refused input may cost: far below what any of them asks for.
    static let memoryCeiling = 1 << 30

    /// Runs the binary and checks that it refused cleanly: a non-zero exit (not a signal), an error
    /// line containing `expected` (and for errors that are not about flag syntax, nothing else on
    /// standard error), none of Foundation's own wording, in time and under ``memoryCeiling``.
    @discardableResult
    func refuses(_ arguments: [String], saying expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ChildProcess {
        let result = try ChildProcess.run(binary, arguments, timeout: 60)
        #expect(!result.timedOut, "hung: \(arguments)", sourceLocation: sourceLocation)
        // 1: our errors; 64: flag validation (ArgumentParser's EX_USAGE). A signal gives 128 + n.
        #expect(result.status == 1 || result.status == 64, "exit \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        // Under tools/sanitize.sh the sanitizer notes a refused allocation on its own "==pid==" line.
        let lines = result.stderr.split(separator: "\n").filter { !$0.hasPrefix("==") }
        #expect(lines.first?.hasPrefix("Error: ") == true, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(lines.first?.contains(expected) == true, "expected '\(expected)' in: \(result.stderr)", sourceLocation: sourceLocation)
        if result.status == 1 { #expect(lines.count == 1, "more than one line: \(result.stderr)", sourceLocation: sourceLocation) }
        for foreign in ["NSCocoaErrorDomain", "The operation could not be completed", "Fatal error", "DecodingError", "Swift runtime failure"] {
            #expect(!result.stderr.contains(foreign), "\(result.stderr)", sourceLocation: sourceLocation)
        }
        #expect(
            result.peakResidentBytes < Self.memoryCeiling, "peak RSS \(result.peakResidentBytes >> 20) MiB",
            sourceLocation: sourceLocation)
        return result
    }

    /// A model whose `ConstantOfShape` makes `shape`, added to a one-element input.
    func constantOfShapeModel(_ shape: [Int], in folder: URL) throws -> (model: String, input: String) {
        let url = folder.appendingPathComponent("constant.onnx")
        try ONNXBuilder(
            nodes: [.init("ConstantOfShape", ["shape"], ["c"], name: "make"), .init("Add", ["x", "c"], ["y"], name: "add")],
            initializers: [.init("shape", dataType: 7, dims: [shape.count], data: .int64s(shape))],
            inputs: [.init("x", dims: [1])], outputs: [.init("y", dims: shape.map { $0 })]
        ).write(to: url)
        let x = folder.appendingPathComponent("x.npy")
        try Tensor(zeros: .float32, shape: [1]).writeNPY(to: x)
        return (url.path, x.path)
    }

    /// C1: an external-data offset of Int64.max overflowed while the error message was built.
    @Test func externalDataOffsetNearIntMax() throws {
        let folder = try Fixtures.temporaryDirectory()
        try Data(count: 16).write(to: folder.appendingPathComponent("w.bin"))
        let url = folder.appendingPathComponent("external.onnx")
        try ONNXBuilder(
            nodes: [.init("Relu", ["w"], ["y"])],
            initializers: [.init("w", dims: [4], data: .external([("location", "w.bin"), ("offset", String(Int64.max))]))],
            inputs: [], outputs: [.init("y", dims: [4])]
        ).write(to: url)
        try refuses(["inspect", url.path], saying: "16 bytes from offset 9223372036854775807 lie beyond the end of w.bin (16 bytes)")
    }

    /// C2: `x + width` overflowed for a rectangle near Int.max.
    @Test func maskRectangleNearIntMax() throws {
        let audit = ["audit", Fixtures.url("audit/shortcut.onnx").path, "--images", Fixtures.url("audit/images").path,
                     "--groups", Fixtures.url("audit/groups.csv").path, "--layer", "features.2", "--out", try Fixtures.temporaryDirectory().path]
        try refuses(audit + ["--mask-rect", "9223372036854775807,0,1,1"], saying: "does not lie inside the")
        try refuses(audit + ["--mask-rect", "0,0,9223372036854775807,1"], saying: "does not lie inside the")
        try refuses(audit + ["--mask-rect", "0,0,0,1"], saying: "--mask-rect expects X,Y,W,H")
    }

    /// C3: `--resize` trapped converting a huge Double, or allocated gigabytes; 0 gave a confusing message.
    @Test func resizeOutOfRange() throws {
        let out = try Fixtures.temporaryDirectory().path
        for value in ["9223372036854775807", "100000", "30000", "0", "-3"] {
            try refuses(
                ["gradcam", model, "--image", Fixtures.url("images/rgb8.png").path, "--layer", "layer4", "--out", out, "--resize=\(value)"],
                saying: "--resize \(value): resizing the shorter side to \(value) pixels is not possible: it must be from 1 to 8192")
        }
    }

    /// C4: a few KB of PNG or JPEG that declare 1,000,000 x 1 or 65,500 x 1 pixels, which the resize
    /// to the model's size would blow up to tens of millions of pixels per row.
    @Test func imagesOfExtremeAspect() throws {
        let out = try Fixtures.temporaryDirectory().path
        let png = Fixtures.url("hostile/wide.png").path
        let jpeg = Fixtures.url("hostile/wide.jpg").path
        try refuses(["gradcam", model, "--image", png, "--layer", "layer4", "--out", out],
                    saying: "\(png): resizing a 1000000x1 image to a shorter side of 73 makes it 73000000x73 pixels, more than the 67108864-pixel limit")
        try refuses(["gradcam", model, "--image", jpeg, "--layer", "layer4", "--out", out],
                    saying: "\(jpeg): resizing a 65500x1 image to a shorter side of 73 makes it 4781500x73 pixels")
        // A mask goes through the same resize.
        try refuses(["audit", Fixtures.url("audit/shortcut.onnx").path, "--images", Fixtures.url("audit/images").path,
                     "--groups", Fixtures.url("audit/groups.csv").path, "--layer", "features.2", "--mask", png, "--out", out],
                    saying: "resizing a 1000000x1 image")
    }

    /// C5: a token grid whose token count overflows.
    @Test func tokenGridOverflow() throws {
        let base = ["gradcam", Fixtures.url("models/vit_dyn25.onnx").path, "--input", Fixtures.url("models/inputs/vit.npy").path,
                    "--layer", "blocks.1.norm1", "--output", try Fixtures.temporaryDirectory().appendingPathComponent("h.npy").path]
        try refuses(base + ["--token-grid", "1:4294967296x4294967296"], saying: "has more tokens than can be counted")
        try refuses(base + ["--token-grid", "9223372036854775807:1x1"], saying: "has more tokens than can be counted")
        try refuses(base + ["--token-grid", "1:0x14"], saying: "at least one row and column")
    }

    /// C6: a .npy header claiming far more than the file holds is refused before anything is allocated.
    @Test func npyHeaderLargerThanItsPayload() throws {
        let folder = try Fixtures.temporaryDirectory()
        for (name, shape) in [("c6.npy", "(100000, 3, 64, 64)"), ("18g.npy", "(2400000000,)"), ("overflow.npy", "(4294967296, 4294967296)")] {
            let npy = folder.appendingPathComponent(name)
            var header = "{'descr': '<f8', 'fortran_order': False, 'shape': \(shape), }"
            header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
            try (Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0]) + Data(header.utf8)).write(to: npy)
            let result = try refuses(
                ["run", model, "--input", npy.path, "--output", folder.appendingPathComponent("out.npy").path], saying: "\(npy.path): ")
            #expect(result.stderr.contains("holds 0 data bytes") || result.stderr.contains("more bytes than can be addressed"), "\(result.stderr)")
        }
        // A payload that is there but over the budget.
        let big = folder.appendingPathComponent("big.npy")
        try Tensor(zeros: .float32, shape: [8, 3, 64, 64]).writeNPY(to: big)
        try refuses(["run", model, "--input", big.path, "--output", folder.appendingPathComponent("out.npy").path, "--max-memory", "256K"],
                    saying: "\(big.path): a float32 tensor of shape [8, 3, 64, 64] needs 384.0 KiB (393216 bytes), more than the memory budget allows (256.0 KiB")
    }

    /// C7: a tiny model whose ConstantOfShape makes [50000, 50000] (10 GB).
    @Test func constantOfShapeBeyondTheBudget() throws {
        let folder = try Fixtures.temporaryDirectory()
        let small = try constantOfShapeModel([50000, 50000], in: folder)
        #expect(try Data(contentsOf: URL(fileURLWithPath: small.model)).count < 200)
        let out = folder.appendingPathComponent("y.npy").path
        try refuses(["run", small.model, "--input", small.input, "--output", out, "--max-memory", "1G"],
                    saying: "node 'make' (ConstantOfShape) failed: a float32 tensor of shape [50000, 50000] needs 9.3 GiB (10000000000 bytes), more than the memory budget allows (1.0 GiB")
        // The default budget (what the system has available) refuses what no machine has.
        let huge = try constantOfShapeModel([5_000_000, 5_000_000], in: folder)
        try refuses(["run", huge.model, "--input", huge.input, "--output", out], saying: "more than the memory budget allows")
        // A budget the system cannot honour: the allocation itself fails, and that is an error too.
        let absurd = try constantOfShapeModel([1 << 28, 1 << 28], in: folder)
        try refuses(["run", absurd.model, "--input", absurd.input, "--output", out, "--max-memory", "1000000T"],
                    saying: "the system refused the 256.0 PiB that a float32 tensor of shape [268435456, 268435456] needs")
    }

    /// If branches nested 5,000 deep (100 KB) overflowed the stack of the recursive decoders.
    @Test func deeplyNestedSubgraphs() throws {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("nested.onnx")
        try NestedModels.nestedGraphs(5_000).write(to: url)
        try refuses(["inspect", url.path], saying: "\(url.path) is not a readable ONNX model: it nests graphs or types more than 100 messages deep")
    }

    /// `inspect` on a FIFO blocked forever in `open`; every file we read is checked first.
    /// The memory measurement itself: `dd` with a 400 MB block holds that much, whatever this test
    /// process holds (under a sanitizer it holds more than the ceiling, and Linux's `ru_maxrss`
    /// would report that for the child too). Ten blocks keep it alive for a second or so, long
    /// enough for the sampler on a loaded machine.
    @Test func childPeakIsTheChildsOwn() throws {
        let result = try ChildProcess.run(
            URL(fileURLWithPath: "/bin/dd"), ["if=/dev/zero", "of=/dev/null", "bs=400M", "count=10", "status=none"], timeout: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.peakResidentBytes >= 400 << 20, "peak RSS \(result.peakResidentBytes >> 20) MiB")
        #expect(result.peakResidentBytes < Self.memoryCeiling, "peak RSS \(result.peakResidentBytes >> 20) MiB")
    }

    /// The watchdog behind every "hung" check: a child past its timeout is killed and says so.
    @Test func childPastItsTimeoutIsKilled() throws {
        let result = try ChildProcess.run(URL(fileURLWithPath: "/bin/sleep"), ["30"], timeout: 1)
        #expect(result.timedOut)
        #expect(result.status == 128 + SIGKILL)
    }

    @Test func fifosAreRefusedWithoutBlocking() throws {
        let folder = try Fixtures.temporaryDirectory()
        let fifo = folder.appendingPathComponent("pipe").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let out = folder.appendingPathComponent("out").path
        try refuses(["inspect", fifo], saying: "cannot read \(fifo): it is a FIFO (named pipe), not a regular file")
        try refuses(["run", model, "--input", fifo, "--output", out], saying: "\(fifo): cannot read it: it is a FIFO")
        try refuses(["gradcam", model, "--image", fifo, "--layer", "layer4", "--out", out], saying: "cannot read image \(fifo): it is a FIFO")
        try refuses(["audit", model, "--images", folder.path, "--groups", fifo, "--layer", "layer4", "--out", out],
                    saying: "cannot read \(fifo): it is a FIFO")
        try refuses(["inspect", folder.path], saying: "it is a folder, not a regular file")
        let external = folder.appendingPathComponent("external.onnx")
        try ONNXBuilder(
            nodes: [.init("Relu", ["w"], ["y"])], initializers: [.init("w", dims: [4], data: .external([("location", "pipe")]))],
            inputs: [], outputs: [.init("y", dims: [4])]
        ).write(to: external)
        try refuses(["inspect", external.path], saying: "external data of tensor 'w': cannot read pipe: it is a FIFO")
    }

    /// Non-finite and out-of-range numbers fail while the flags are parsed, before any work.
    @Test func numericFlagsAreCheckedAtParseTime() throws {
        let audit = ["audit", model, "--images", "/nonexistent", "--groups", "/nonexistent.csv", "--layer", "layer4", "--out", "/tmp/x"]
        try refuses(audit + ["--threshold", "nan"], saying: "--threshold must be a number from 0.0 to 1.0, got nan")
        try refuses(audit + ["--threshold", "2"], saying: "--threshold must be a number from 0.0 to 1.0, got 2.0")
        try refuses(audit + ["--batch-size", "0"], saying: "--batch-size must be at least 1, got 0")
        try refuses(audit + ["--shard", "4/3"], saying: "--shard expects K/N")
        let gradcam = ["gradcam", model, "--image", Fixtures.url("images/rgb8.png").path, "--layer", "layer4", "--out", "/tmp/x"]
        try refuses(gradcam + ["--alpha", "inf"], saying: "--alpha must be a number from 0.0 to 1.0, got inf")
        try refuses(gradcam + ["--mean", "0.5,nan,0.5", "--std", "1,1,1"], saying: "--mean and --std each need three finite")
        try refuses(gradcam + ["--class=-1"], saying: "--class takes class indices")
        try refuses(["bench", model, "--input", input, "--runs", "0"], saying: "--runs must be at least 1")
        try refuses(["inspect", model, "--max-memory", "lots"], saying: "--max-memory: 'lots' is not a memory size")
    }

    /// `run --output` equal to `--input` overwrote the input.
    @Test func outputsThatWouldOverwriteAnInputAreRefused() throws {
        let folder = try Fixtures.temporaryDirectory()
        let copy = folder.appendingPathComponent("input.npy")
        try FileManager.default.copyItem(atPath: input, toPath: copy.path)
        let before = try Data(contentsOf: copy)
        try refuses(["run", model, "--input", copy.path, "--output", copy.path], saying: "--output \(copy.path) is the --input file")
        let link = folder.appendingPathComponent("link.npy")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: copy)
        try refuses(["run", model, "--input", copy.path, "--output", link.path], saying: "is the --input file")
        try refuses(["run", model, "--input", "input=\(copy.path)", "--output", folder.appendingPathComponent("o.npy").path,
                     "--tap", "logits=\(folder.path)/../\(folder.lastPathComponent)/input.npy"], saying: "is the --input file")
        try refuses(["gradcam", model, "--input", copy.path, "--layer", "layer4", "--output", model], saying: "is the model file")
        #expect(try Data(contentsOf: copy) == before)
    }

    /// Foundation's errors read "NSCocoaErrorDomain error 256"; ours name the file and the reason.
    @Test func fileErrorsAreOurOwnSentences() throws {
        let folder = try Fixtures.temporaryDirectory()
        try refuses(["run", model, "--input", input, "--output", "/nonexistent/out.npy"],
                    saying: "/nonexistent/out.npy: cannot write it (the folder /nonexistent does not exist)")
        try refuses(["audit", model, "--images", folder.path, "--groups", "/nonexistent/groups.csv", "--layer", "layer4", "--out", folder.path],
                    saying: "cannot read /nonexistent/groups.csv: No such file or directory")
        try refuses(["gradcam", model, "--images", "/nonexistent", "--layer", "layer4", "--out", folder.path],
                    saying: "cannot list --images /nonexistent: no such folder")
        try refuses(["gradcam", model, "--image", Fixtures.url("images/rgb8.png").path, "--labels", "/nonexistent/labels.txt",
                     "--layer", "layer4", "--out", folder.path], saying: "/nonexistent/labels.txt: No such file or directory")
        try refuses(["merge", folder.path, "--out", folder.appendingPathComponent("m").path],
                    saying: "\(folder.path) is not a complete folder of shortcut-detect results: its manifest.json cannot be read (No such file or directory)")
        let state = folder.appendingPathComponent("bad/state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        try Data("{\"height\": 1}".utf8).write(to: state.appendingPathComponent("config.json"))
        try refuses(["merge", folder.appendingPathComponent("bad").path, "--out", folder.appendingPathComponent("m").path],
                    saying: "bad is not a complete folder of shortcut-detect results: its manifest.json cannot be read")
    }
}

import Foundation
import ShortcutDetect
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Issue 13's audit cases through the built binary: crafted shard states (C8), interruptions while
/// a report is written, repeated rows, unreadable images and bad flags. Each refusal is one line of
/// our own error under 1 GiB of resident memory (``HostileInputTests/refuses(_:saying:sourceLocation:)``);
/// each interruption leaves the report folder absent, or complete and consistent, never mixed.
@Suite struct AuditRobustnessTests {
    let hostile = HostileInputTests()
    var binary: URL { hostile.binary }
    let images = Fixtures.url("audit/images")

    /// Eight images of the planted-shortcut fixture, two groups alternating, and its options
    /// (without the faithfulness metrics, whose imputation noise is seeded by row: see
    /// ``repeatedRowsAreReportedNotCounted()``; they also make each run twice as long).
    func audit(_ out: URL, rows: [String]? = nil, images: URL? = nil, extra: [String] = []) throws -> [String] {
        let groups = try Fixtures.temporaryDirectory().appendingPathComponent("groups.csv")
        let lines = rows ?? (0..<8).map { "img_\(String(format: "%03d", $0 * 5)).png,\($0 % 2 == 0 ? "A" : "B"),\($0 % 2)" }
        try (["file,group,label"] + lines).joined(separator: "\n").write(to: groups, atomically: true, encoding: .utf8)
        return ["audit", Fixtures.url("audit/shortcut.onnx").path, "--images", (images ?? self.images).path, "--groups", groups.path,
                "--layer", "features.2", "--mask", Fixtures.url("audit/mask.png").path, "--preprocess", "half", "--batch-size", "4", "--faithfulness", "0",
                "--out", out.path] + extra
    }

    /// Runs the binary; a run that must succeed is checked for it and for its memory.
    @discardableResult
    func run(_ arguments: [String], environment: [String: String] = [:], succeeds: Bool = true,
             whileRunning: (@Sendable (pid_t) -> Void)? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> ChildProcess {
        let result = try ChildProcess.run(binary, arguments, timeout: 300, environment: environment, whileRunning: whileRunning)
        #expect(!result.timedOut, "hung: \(arguments)", sourceLocation: sourceLocation)
        if succeeds { #expect(result.status == 0, "\(result.stderr)", sourceLocation: sourceLocation) }
        #expect(result.peakResidentBytes < HostileInputTests.memoryCeiling, "peak RSS \(result.peakResidentBytes >> 20) MiB", sourceLocation: sourceLocation)
        return result
    }

    func manifest(_ folder: URL) throws -> Data { try Data(contentsOf: folder.appendingPathComponent("manifest.json")) }

    /// Rewrites `folder`'s manifest to match its files, as someone who edits a report and knows the
    /// format would: the checks behind the manifest's must catch what it no longer can.
    func remanifest(_ folder: URL) throws {
        let url = folder.appendingPathComponent("manifest.json")
        var object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var files: [[String: Any]] = []
        for case let path as String in FileManager.default.enumerator(atPath: folder.path) ?? FileManager.DirectoryEnumerator() {
            var isFolder: ObjCBool = false
            guard path != "manifest.json", FileManager.default.fileExists(atPath: folder.appendingPathComponent(path).path, isDirectory: &isFolder),
                !isFolder.boolValue
            else { continue }
            let entry = try ManifestEntry(file: folder.appendingPathComponent(path), path: path)
            files.append(["path": entry.path, "bytes": entry.bytes, "sha256": entry.sha256])
        }
        object["files"] = files.sorted { ($0["path"] as? String ?? "") < ($1["path"] as? String ?? "") }
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]).write(to: url)
    }

    /// A copy of `report` with `edit` applied to it (and, unless `manifest` is false, its manifest
    /// rewritten to match).
    func edited(_ report: URL, manifest: Bool = true, _ edit: (URL) throws -> Void) throws -> URL {
        let copy = try Fixtures.temporaryDirectory().appendingPathComponent(report.lastPathComponent)
        try FileManager.default.copyItem(at: report, to: copy)
        try edit(copy.appendingPathComponent("state"))
        if manifest { try remanifest(copy) }
        return copy
    }

    func sums(_ state: URL) throws -> [String: [Int64]] {
        try JSONDecoder().decode([String: [Int64]].self, from: Data(contentsOf: state.appendingPathComponent("sums.json")))
    }

    func writeSums(_ sums: [String: [Int64]], _ state: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        try encoder.encode(sums).write(to: state.appendingPathComponent("sums.json"))
    }

    /// C8: shard states that trapped, or merged with exit 0 into a wrong report, are refused.
    @Test func mergeRefusesCraftedState() throws {
        let folder = try Fixtures.temporaryDirectory()
        let shards = (1...2).map { folder.appendingPathComponent("shard\($0)") }
        for (k, shard) in shards.enumerated() { try run(try audit(shard, extra: ["--shard", "\(k + 1)/2"])) }
        let out = folder.appendingPathComponent("merged").path
        // The shards as written merge.
        try run(["merge", shards[0].path, shards[1].path, "--out", out])
        let merge = { (first: URL, second: URL) in ["merge", first.path, second.path, "--out", folder.appendingPathComponent("refused").path] }
        let good = shards[1]

        // A config.json height of Int.max trapped while the maps were pooled.
        let tall = try edited(shards[0]) { state in
            let url = state.appendingPathComponent("config.json")
            let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "\"height\" : 64", with: "\"height\" : 9223372036854775807")
            #expect(text.contains("9223372036854775807"))
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        try hostile.refuses(merge(tall, good), saying: "state/config.json holds impossible settings: a 9223372036854775807x64 input")
        // Sums of Int64.max: in two shards they overflow when added; in one they disagree with its maps.
        let huge = try shards.map { shard in
            try edited(shard) { state in
                var values = try sums(state)
                values["A"]?[0] = Int64.max
                try writeSums(values, state)
            }
        }
        try hostile.refuses(merge(huge[0], huge[1]), saying: "the shards' sums of group 'A' overflow: their states are damaged")
        try hostile.refuses(["merge", huge[0].path, "--out", folder.appendingPathComponent("refused").path], saying: "state/sums.json: group 'A' sums to ")
        // An empty sums.json merged with exit 0 into a report without group means.
        let empty = try edited(shards[0]) { try Data("{}".utf8).write(to: $0.appendingPathComponent("sums.json")) }
        try hostile.refuses(merge(empty, good), saying: "state/sums.json holds the groups [] but the records hold [\"A\", \"B\"]")
        // Bytes after the last pooled map.
        let longer = try edited(shards[0]) { state in
            let handle = try FileHandle(forWritingTo: state.appendingPathComponent("pooled.f32"))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(count: 4))
            try handle.close()
        }
        let cells = 32 * 32
        try hostile.refuses(merge(longer, good), saying: "state/pooled.f32 has \(4 * cells * 4 + 4) bytes; 4 rows of \(cells) float32 values need \(4 * cells * 4)")
        // Overlays the report needs: missing, or not a picture.
        let overlays = shards[0].appendingPathComponent("state/overlays")
        let first = try #require(try FileManager.default.contentsOfDirectory(atPath: overlays.path).sorted().first)
        let missing = try edited(shards[0]) { try FileManager.default.removeItem(at: $0.appendingPathComponent("overlays/\(first)")) }
        try hostile.refuses(merge(missing, good), saying: "state/overlays/\(first) (No such file or directory): the report needs the overlay of img_")
        let garbage = try edited(shards[0]) { try Data("not a png".utf8).write(to: $0.appendingPathComponent("overlays/\(first)")) }
        try hostile.refuses(merge(garbage, good), saying: "state/overlays/\(first) is not a valid overlay")
        // A config.json that is not one, behind a matching manifest.
        let unreadable = try edited(shards[0]) { try Data("{\"height\": 1}".utf8).write(to: $0.appendingPathComponent("config.json")) }
        try hostile.refuses(merge(unreadable, good), saying: "state/config.json is not a valid audit state (missing 'model' at the top level)")
        // The same edits without a new manifest are caught by the manifest itself.
        let unlisted = try edited(shards[0], manifest: false) { try Data("{}".utf8).write(to: $0.appendingPathComponent("sums.json")) }
        try hostile.refuses(merge(unlisted, good), saying: "state/sums.json has 2 bytes; the manifest says")
        let extra = try edited(shards[0], manifest: false) { try Data().write(to: $0.appendingPathComponent("extra.bin")) }
        try hostile.refuses(merge(extra, good), saying: "state/extra.bin is not listed in the manifest")
        // Nothing was left behind by the refusals.
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("refused").path))
    }

    /// Every folder or file beside `report` (staging folders of an interrupted run are hidden ones).
    func siblings(of report: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: report.deletingLastPathComponent().path).sorted()
    }

    /// Which complete report `folder` holds: `old` or `new` (by the threshold its manifest records),
    /// `nil` when it is absent; anything incomplete or mixed fails the test.
    func completeReport(_ folder: URL, old: Data, sourceLocation: SourceLocation = #_sourceLocation) throws -> String? {
        guard FileManager.default.fileExists(atPath: folder.path) else { return nil }
        do { _ = try ManifestHeader.verify(folder, kind: "audit") } catch {
            Issue.record("\(folder.path) is not complete: \(error)", sourceLocation: sourceLocation)
            return "broken"
        }
        return try manifest(folder) == old ? "old" : "new"
    }

    /// SIGINT at steps of writing a report over an earlier one (each state and report file
    /// finished, the manifest, the renames: the first three, every fifth, and the last five), and
    /// SIGKILL at every other one of them: the folder holds the earlier report or the new one,
    /// complete, never a mix; an interrupted run leaves nothing else behind, a killed one only a
    /// hidden staging folder that the next run removes.
    @Test func interruptedReportsAreOldOrNewNeverMixed() throws {
        let folder = try Fixtures.temporaryDirectory()
        let pristine = folder.appendingPathComponent("pristine")
        try run(try audit(pristine, extra: ["--threshold", "0.1"]))
        let old = try manifest(pristine)
        let report = try Fixtures.temporaryDirectory().appendingPathComponent("report")
        let rerun = try audit(report, extra: ["--threshold", "0.2", "--overwrite"])
        var outcomes: [Int: String] = [:]
        /// Interrupts the rerun at `step`; returns whether it was interrupted (not past the last step).
        func interrupt(at step: Int) throws -> Bool {
            try? FileManager.default.removeItem(at: report)
            try FileManager.default.copyItem(at: pristine, to: report)
            let result = try run(rerun, environment: ["SHORTCUT_DETECT_TEST_INTERRUPT_AFTER": String(step)], succeeds: false)
            let state = try completeReport(report, old: old)
            let left = try siblings(of: report)
            #expect(state != nil && left == ["report"], "step \(step): \(state ?? "no report"), beside \(left)")
            guard result.stderr.contains("test hook: SIGINT at step \(step)") else {
                #expect(result.status == 0 && state == "new", "step \(step): \(result.stderr)")
                return false
            }
            // Once the new folder is in place the signal may lose the race with the normal exit.
            #expect(result.status == 128 + SIGINT || (result.status == 0 && state == "new"), "step \(step): \(result.stderr)")
            outcomes[step] = state ?? "absent"
            if outcomes.count % 2 == 1 {
                try FileManager.default.removeItem(at: report)
                try FileManager.default.copyItem(at: pristine, to: report)
                let killed = try run(rerun, environment: ["SHORTCUT_DETECT_TEST_KILL_AFTER": String(step)], succeeds: false)
                #expect(killed.status == 128 + SIGKILL)
                #expect(try completeReport(report, old: old) != nil, "step \(step) (killed): the report is gone")
                #expect(try siblings(of: report).allSatisfy { $0 == "report" || $0.hasPrefix(".report.") })
            }
            return true
        }
        var step = 1
        var previous = 0
        while try interrupt(at: step) {
            previous = step
            step += step < 3 ? 1 : 5
            try #require(step < 500, "the run never ends uninterrupted")
        }
        // The last steps (between the last interrupted one tried and the first past the end), then the five before.
        var last = previous
        for candidate in previous + 1..<step where try interrupt(at: candidate) { last = candidate }
        for candidate in max(1, last - 4)...last where outcomes[candidate] == nil { _ = try interrupt(at: candidate) }
        // Writing a report takes a few dozen steps; the first interrupted ones leave the earlier
        // report, the last ones (after the new folder is in place) the new one.
        #expect(last > 20, "\(outcomes)")
        #expect(outcomes[1] == "old" && outcomes[last] == "new", "\(outcomes.sorted { $0.key < $1.key })")
        // What a killed run left (a hidden staging folder) goes with the next run.
        try run(rerun)
        let left = try siblings(of: report)
        #expect(left == ["report"], "\(left)")

        // Into a fresh folder: absent until complete.
        let fresh = try Fixtures.temporaryDirectory().appendingPathComponent("report")
        for step in [1, last / 2, last] {
            try? FileManager.default.removeItem(at: fresh)
            let result = try run(try audit(fresh), environment: ["SHORTCUT_DETECT_TEST_INTERRUPT_AFTER": String(step)], succeeds: false)
            let state = try completeReport(fresh, old: Data())
            let left = try siblings(of: fresh)
            #expect(left == (state == nil ? [] : ["report"]), "step \(step): \(left)")
            #expect(result.status == 128 + SIGINT || (result.status == 0 && state == "new"), "step \(step): \(result.stderr)")
        }
    }

    /// SIGINT from outside while the model runs: the staging folder goes, the earlier report stays.
    @Test func interruptedWhileAuditing() throws {
        let folder = try Fixtures.temporaryDirectory()
        let report = folder.appendingPathComponent("report")
        try run(try audit(report))
        let old = try manifest(report)
        let parent = folder.path
        let result = try run(try audit(report, extra: ["--overwrite", "--threshold", "0.3"]), succeeds: false) { pid in
            // As soon as the staging folder exists, the audit is under way.
            for _ in 0..<20_000 {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
                if names.contains(where: { $0.hasPrefix(".report.partial-") }) { break }
                usleep(1_000)
            }
            kill(pid, SIGINT)
        }
        #expect(result.status == 128 + SIGINT, "\(result.stderr)")
        #expect(try completeReport(report, old: old) == "old")
        let left = try siblings(of: report)
        #expect(left == ["report"], "\(left)")
    }

    /// A file listed twice is audited once: the repeat is a row of samples.csv with the reason and a
    /// count in the summary, and every number equals the audit without it. (Rows keep their
    /// position in groups.csv, which seeds the faithfulness metrics' noise; those are off here.)
    @Test func repeatedRowsAreReportedNotCounted() throws {
        let folder = try Fixtures.temporaryDirectory()
        let rows = (0..<8).map { "img_\(String(format: "%03d", $0 * 5)).png,\($0 % 2 == 0 ? "A" : "B"),\($0 % 2)" }
        let once = folder.appendingPathComponent("once")
        let twice = folder.appendingPathComponent("twice")
        try run(try audit(once, rows: rows))
        let result = try run(try audit(twice, rows: Array(rows[..<3]) + [rows[0]] + Array(rows[3...])))
        #expect(result.stdout.contains("1 repeated row(s) of groups.csv were counted once"), "\(result.stdout)")
        let csv = try String(contentsOf: twice.appendingPathComponent("samples.csv"), encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 1 + 9)
        #expect(csv[4].hasPrefix("img_000.png,A,0,") && csv[4].hasSuffix(",\"duplicate: the file was already listed on row 2 of groups.csv, where it is audited\""), "\(csv[4])")
        func summary(_ report: URL) throws -> [String: Any] {
            try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report.appendingPathComponent("summary.json"))) as? [String: Any])
        }
        let (a, b) = (try summary(once), try summary(twice))
        #expect((b["skipped"] as? [String: Any])?["duplicate"] as? Int == 1)
        #expect(a["skipped"] == nil)
        #expect(NSDictionary(dictionary: try #require(a["groups"] as? [String: Any])).isEqual(to: try #require(b["groups"] as? [String: Any])))
        #expect(try Data(contentsOf: once.appendingPathComponent("state/sums.json")) == Data(contentsOf: twice.appendingPathComponent("state/sums.json")))
    }

    /// One corrupt image does not sink the audit: it is a row of samples.csv with the reason and a
    /// count in the summary. With `--strict` it stops the audit in one line and leaves no report.
    @Test func aCorruptImageIsAnErrorRow() throws {
        let folder = try Fixtures.temporaryDirectory()
        let copies = folder.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: copies, withIntermediateDirectories: true)
        for n in 0..<8 {
            let name = "img_\(String(format: "%03d", n * 5)).png"
            try FileManager.default.copyItem(at: images.appendingPathComponent(name), to: copies.appendingPathComponent(name))
        }
        // A PNG cut short: the header reads, the pixels do not.
        let broken = copies.appendingPathComponent("img_010.png")
        try Data(try Data(contentsOf: broken).prefix(100)).write(to: broken)
        let report = folder.appendingPathComponent("report")
        let result = try run(try audit(report, images: copies))
        #expect(result.stdout.contains("1 image(s) could not be used and were left out"), "\(result.stdout)")
        #expect(result.stdout.contains("wrote the report for 7 image(s) (1 row(s) skipped, listed in samples.csv)"), "\(result.stdout)")
        let csv = try String(contentsOf: report.appendingPathComponent("samples.csv"), encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 1 + 8)
        #expect(csv[3].hasPrefix("img_010.png,A,0" + String(repeating: ",", count: 12)) && csv[3].contains("unusable: "), "\(csv[3])")
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: report.appendingPathComponent("summary.json"))) as? [String: Any]
        #expect((summary?["skipped"] as? [String: Any])?["unusable"] as? Int == 1)

        let strict = folder.appendingPathComponent("strict")
        try hostile.refuses(try audit(strict, images: copies, extra: ["--strict"]), saying: "img_010.png")
        #expect(!FileManager.default.fileExists(atPath: strict.path))
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(left == ["images", "report"])
    }

    /// The audit and `gradcam --images` run the model once forward and once backward per batch
    /// (predictions and embeddings come from the explaining pass); `embed` once forward.
    @Test func onePassPerBatch() throws {
        let folder = try Fixtures.temporaryDirectory()
        let count = ["SHORTCUT_DETECT_REPORT_PASSES": "1"]
        let audited = try run(try audit(folder.appendingPathComponent("report")), environment: count)
        #expect(audited.stderr.contains("passes: forward 2, reverse 2"), "\(audited.stderr)")  // 8 images, batches of 4
        let model = Fixtures.url("audit/shortcut.onnx").path
        // The fixture's 48 images in batches of 16.
        let gradcam = try run(["gradcam", model, "--images", images.path, "--layer", "features.2", "--preprocess", "half",
                               "--batch-size", "16", "--out", folder.appendingPathComponent("maps").path], environment: count)
        #expect(gradcam.stderr.contains("passes: forward 3, reverse 3"), "\(gradcam.stderr)")
        let embed = try run(["embed", model, "--images", images.path, "--layer", "features.2", "--preprocess", "half",
                             "--batch-size", "16", "--out", folder.appendingPathComponent("e.npy").path], environment: count)
        #expect(embed.stderr.contains("passes: forward 3, reverse 0"), "\(embed.stderr)")
        // The counterfactual test adds one forward pass per batch, nothing else.
        let filled = try run(try audit(folder.appendingPathComponent("filled"), extra: ["--counterfactual", "mean"]), environment: count)
        #expect(filled.stderr.contains("passes: forward 4, reverse 2"), "\(filled.stderr)")
    }

    /// `--threshold nan` is refused while the flags are read: no model is loaded, no folder made.
    @Test func nonFiniteThresholdIsRefusedBeforeWork() throws {
        let out = try Fixtures.temporaryDirectory().appendingPathComponent("report")
        let result = try hostile.refuses(try audit(out, extra: ["--threshold", "nan"]), saying: "--threshold must be a number from 0.0 to 1.0, got nan")
        #expect(result.status == 64)
        #expect(!FileManager.default.fileExists(atPath: out.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.deletingLastPathComponent().path).isEmpty)
    }
}

import Foundation
import ShortcutDetect
import TensorCore
import TestSupport
import Testing

/// `detect` end to end on the reference data sets (Fixtures/detectors).
@Suite struct DetectCLITests {
    let cli = CLITests()

    func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
    }

    @Test func detectFlagsTheNonlinearShortcutAndWritesTheReport() throws {
        let folder = try Fixtures.temporaryDirectory()
        let set = Fixtures.url("detectors/nonlinear")
        let result = try cli.cli([
            "detect", "--embeddings", set.appendingPathComponent("embeddings.npy").path,
            "--groups", set.appendingPathComponent("groups.csv").path, "--out", folder.path,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Moderate shortcut risk: a quadratic probe"))
        let detect = try json(folder.appendingPathComponent("detect.json"))
        #expect(detect["n"] as? Int == 500 && detect["dim"] as? Int == 64)
        #expect(detect["groups"] as? [String] == ["g0", "g1"])
        let methods = try #require(detect["methods"] as? [String: Any])
        #expect(Set(methods.keys) == ["probe", "statistical", "hbac", "geometric"])
        let probe = try #require(methods["probe"] as? [String: Any])
        #expect(probe["metric"] as? String == "f1" && probe["threshold"] as? Double == 0.7)
        #expect((probe["value"] as? Double ?? 1) < 0.7)
        let nonlinear = try #require(probe["nonlinear"] as? [String: Any])
        #expect((nonlinear["value"] as? Double ?? 0) >= 0.8 && nonlinear["detected"] as? Bool == true)
        let statistical = try #require(methods["statistical"] as? [String: Any])
        #expect(statistical["test"] as? String == "mannwhitneyu" && statistical["correction"] as? String == "fdr_bh")
        let comparison = try #require((statistical["comparisons"] as? [[String: Any]])?.first)
        #expect(comparison["groups"] as? [String] == ["g0", "g1"])
        #expect((comparison["p_values"] as? [Double])?.count == 64)
        let overall = try #require(detect["overall"] as? [String: Any])
        #expect(overall["risk"] as? String == "moderate")

        let html = try String(contentsOf: folder.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("<circle"))  // the projection
        #expect(html.contains("against the threshold 0.70"))
        #expect(html.contains("-log10 p, g0 vs g1"))  // p-values per dimension
        #expect(html.contains("<th>cluster</th>"))  // the cluster table
        #expect(!html.contains("src=\"http") && !html.contains("<script"))  // self-contained
    }

    @Test func multiClassComparesEveryPairAndEachAgainstTheRest() throws {
        let folder = try Fixtures.temporaryDirectory()
        let set = Fixtures.url("detectors/multiclass")
        let result = try cli.cli([
            "detect", "--embeddings", set.appendingPathComponent("embeddings.npy").path,
            "--groups", set.appendingPathComponent("groups.csv").path, "--methods", "statistical", "--out", folder.path,
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let methods = try #require(try json(folder.appendingPathComponent("detect.json"))["methods"] as? [String: Any])
        #expect(Array(methods.keys) == ["statistical"])
        let comparisons = try #require((methods["statistical"] as? [String: Any])?["comparisons"] as? [[String: Any]])
        #expect(comparisons.map { $0["groups"] as? [String] ?? [] } == [
            ["g0", "g1"], ["g0", "g2"], ["g1", "g2"], ["g0", "rest"], ["g1", "rest"], ["g2", "rest"],
        ])
    }

    /// Rows matched through `E.files.txt` give exactly the report of the same rows matched by position.
    @Test func rowsAreMatchedByFileWhenTheFileListIsThere() throws {
        let folder = try Fixtures.temporaryDirectory()
        let source = try Tensor(npyAt: Fixtures.url("detectors/planted_shortcut/embeddings.npy"))
        let groups = try String(contentsOf: Fixtures.url("detectors/planted_shortcut/groups.csv"), encoding: .utf8)
            .split(separator: "\n").dropFirst().map { String($0.split(separator: ",")[0]) }
        let files = (0..<groups.count).map { "scan_\($0).png" }
        try source.writeNPY(to: folder.appendingPathComponent("e.npy"))
        try (files.joined(separator: "\n") + "\n").write(to: folder.appendingPathComponent("e.files.txt"), atomically: true, encoding: .utf8)
        // By file: rows in reverse order, an extra column, a quoted field.
        let byFile = ["site,file,group,note"] + groups.indices.reversed().map { "x,\(files[$0]),\(groups[$0]),\"a, b\"" }
        try (byFile.joined(separator: "\n") + "\n").write(to: folder.appendingPathComponent("by-file.csv"), atomically: true, encoding: .utf8)
        try source.writeNPY(to: folder.appendingPathComponent("plain.npy"))
        try ((["group"] + groups).joined(separator: "\n") + "\n").write(
            to: folder.appendingPathComponent("by-position.csv"), atomically: true, encoding: .utf8)

        let first = try cli.cli([
            "detect", "--embeddings", folder.appendingPathComponent("e.npy").path, "--groups",
            folder.appendingPathComponent("by-file.csv").path, "--out", folder.appendingPathComponent("a").path,
        ])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("matched by file"))
        let second = try cli.cli([
            "detect", "--embeddings", folder.appendingPathComponent("plain.npy").path, "--groups",
            folder.appendingPathComponent("by-position.csv").path, "--out", folder.appendingPathComponent("b").path,
        ])
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("matched by position"))
        for file in ["detect.json", "report.html"] {
            #expect(try Data(contentsOf: folder.appendingPathComponent("a/\(file)")) == Data(contentsOf: folder.appendingPathComponent("b/\(file)")))
        }
    }

    @Test func detectRefusesWhatItCannotUse() throws {
        let folder = try Fixtures.temporaryDirectory()
        func write(_ rows: [[Float]], _ name: String) throws -> String {
            let url = folder.appendingPathComponent(name)
            try Tensor(shape: [rows.count, rows[0].count], scalars: rows.flatMap { $0 }).writeNPY(to: url)
            return url.path
        }
        func csv(_ lines: [String], _ name: String) throws -> String {
            let url = folder.appendingPathComponent(name)
            try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }
        let rows: [[Float]] = (0..<8).map { i in [Float(i), Float(i % 3)] }
        let good = try write(rows, "good.npy")
        let twoGroups = try csv(["group"] + (0..<8).map { $0 < 4 ? "a" : "b" }, "two.csv")
        func refuse(_ arguments: [String], _ message: String) throws {
            let result = try cli.cli(["detect"] + arguments + ["--out", folder.appendingPathComponent("out").path])
            #expect(result.status != 0)
            #expect(result.stderr.contains(message), "\(result.stderr)")
        }
        try refuse(["--embeddings", good, "--groups", try csv(["group", "a", "b", "a"], "short.csv")],
                   "has 3 rows but the embeddings have 8")
        try refuse(["--embeddings", good, "--groups", try csv(["group"] + Array(repeating: "a", count: 8), "one.csv")],
                   "all 8 rows are in one group ('a')")
        var withNaN = rows
        withNaN[5][1] = .nan
        try refuse(["--embeddings", try write(withNaN, "nan.npy"), "--groups", twoGroups], "embedding row 5 (counting from 0) holds NaN in dimension 1")
        var withInf = rows
        withInf[2][0] = -.infinity
        try refuse(["--embeddings", try write(withInf, "inf.npy"), "--groups", twoGroups], "embedding row 2 (counting from 0) holds an infinite value")
        try refuse(["--embeddings", good, "--groups", try csv(["file,label", "x,1"], "nogroup.csv")], "needs a header with a 'group' column")
        try refuse(["--embeddings", good, "--groups", twoGroups, "--methods", "probe,magic"], "unknown method 'magic'")
    }
}

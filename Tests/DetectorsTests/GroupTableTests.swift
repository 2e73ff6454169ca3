@testable import Detectors
import Foundation
import TensorCore
import TestSupport
import Testing

@Suite struct GroupTableTests {
    func table(_ lines: [String]) throws -> GroupTable {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("groups.csv")
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return try GroupTable.read(csv: url)
    }

    @Test func columnsAreFoundByNameAndFilesMatchRows() throws {
        let t = try table(["Site,FILE,label,group", "x,b.png,1,\"B, late\"", "y,a.png,0,A"])
        #expect(t.hasFiles)
        let (groups, labels) = try t.aligned(count: 2, files: ["a.png", "b.png"])
        #expect(groups == ["A", "B, late"] && labels == ["0", "1"])
        let byPosition = try t.aligned(count: 2, files: nil)
        #expect(byPosition.groups == ["B, late", "A"])
    }

    @Test func problemsAreNamed() throws {
        let t = try table(["file,group", "a.png,A", "b.png,B"])
        #expect(throws: DetectorError.invalidInput("1 of the 2 embedded files are not in \(t.source), e.g. c.png")) {
            try t.aligned(count: 2, files: ["a.png", "c.png"])
        }
        #expect(throws: DetectorError.self) { try t.aligned(count: 3, files: ["a.png", "b.png"]) }
        #expect(throws: DetectorError.self) { try table(["file,group", "a.png,A", "a.png,B"]).aligned(count: 2, files: ["a.png", "b.png"]) }
        #expect(throws: DetectorError.self) { try table(["group,label", ",1"]) }
        // Labels only when every row has one.
        #expect(try table(["group,label", "A,1", "B,"]).aligned(count: 2, files: nil).labels == nil)
    }

    @Test func csvFieldsHoldQuotesAndCommas() {
        #expect(CSV.fields(in: "a,\"b, c\",\"say \"\"hi\"\"\",") == ["a", "b, c", "say \"hi\"", ""])
    }

    @Test func theDetectorRefusesBadInput() throws {
        let detector = ShortcutDetector()
        let x = try Tensor(shape: [6, 2], scalars: (0..<12).map { Float($0) })
        #expect(throws: DetectorError.self) { try detector.fit(embeddings: x, groups: ["a", "b"]) }
        #expect(throws: DetectorError.self) { try detector.fit(embeddings: x, groups: Array(repeating: "a", count: 6)) }
        #expect(throws: DetectorError.self) { try detector.fit(embeddings: x, groups: ["a", "b", "a", "b", "a", "b"], labels: ["1"]) }
        let vector = try Tensor(shape: [12], scalars: (0..<12).map { Float($0) })
        #expect(throws: DetectorError.self) { try detector.fit(embeddings: vector, groups: ["a", "b"]) }
        // Six rows, two groups: the probe and statistics run, geometry (20 per group) is skipped with its reason.
        let report = try detector.fit(embeddings: x, groups: ["a", "b", "a", "b", "a", "b"])
        #expect(report.statistical != nil && report.geometric == nil)
        #expect(report.skipped[.geometric]?.contains("at least 20 samples") == true)
    }
}

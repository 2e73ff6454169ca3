import Audit
import Foundation
import TensorCore
import TestSupport
import Testing

@Suite struct StatisticsTests {
    @Test func benjaminiHochbergKeepsTheStepUpRule() {
        // m = 5, q = 0.05: thresholds 0.01, 0.02, 0.03, 0.04, 0.05; the largest passing rank is 3
        // (0.041 misses 0.04), so the three smallest p-values are discoveries.
        let p = [0.001, 0.041, 0.025, 0.2, 0.019]
        #expect(Statistics.benjaminiHochberg(p, q: 0.05) == [true, false, true, false, true])
        #expect(Statistics.benjaminiHochberg([0.5, 0.6], q: 0.05) == [false, false])
    }

    @Test func bootstrapIntervalsAreDeterministicAndCoverTheMean() {
        let values = (0..<40).map { Double($0 % 7) / 10 }
        let a = Statistics.bootstrapMeanInterval(values, seed: 1)
        let b = Statistics.bootstrapMeanInterval(values, seed: 1)
        let mean = values.reduce(0, +) / Double(values.count)
        #expect(a == b)
        #expect(a.0 < mean && mean < a.1)
        #expect(Statistics.bootstrapMeanInterval([0.3], seed: 1) == (0.3, 0.3))
    }

    @Test func permutationTestFindsARealDifferenceAndNotNoise() {
        // Feature 0 differs between groups by far more than its spread; feature 1 does not.
        var random = SeededRandom(seed: 3)
        var values: [Float] = []
        let labels = (0..<30).map { $0 < 15 }
        for inGroup in labels {
            values.append(Float((inGroup ? 1.0 : 0.0) + random.uniform(-0.1...0.1)))
            values.append(Float(random.uniform(-1...1)))
        }
        let p = Statistics.permutationPValues(values, samples: 30, features: 2, inGroup: labels, permutations: 500, seed: 9)
        #expect(p[0] < 0.01)
        #expect(p[1] > 0.05)
    }
}

@Suite struct GroupComparisonTests {
    @Test func overlapIsHistogramIntersectionOfMassNormalizedMaps() {
        #expect(AttentionOverlapResult.overlap([1, 1, 0, 0], [2, 2, 0, 0]) == 1)
        #expect(AttentionOverlapResult.overlap([1, 0], [0, 1]) == 0)
        #expect(abs(AttentionOverlapResult.overlap([3, 1], [1, 1]) - 0.75) < 1e-12)
    }

    @Test func divergentGroupsAreFlaggedWhereTheyDiffer() throws {
        // 20 maps of 8x8: group A attends to the left half, B to the right half, with noise.
        var random = SeededRandom(seed: 5)
        var values: [Float] = []
        var groups: [String] = []
        for n in 0..<20 {
            let left = n % 2 == 0
            groups.append(left ? "A" : "B")
            for _ in 0..<8 { for x in 0..<8 { values.append(Float(((x < 4) == left ? 1 : 0.1) + random.uniform(0...0.05))) } }
        }
        let result = try AttentionOverlapResult.compare(Tensor(shape: [20, 8, 8], scalars: values), groups: groups)
        #expect(result.overlapScore < 0.3)
        #expect(result.divergencePair == GroupPair(first: "A", second: "B"))
        #expect(result.divergenceRegions[0] > 0.8 && result.divergenceRegions[7] < -0.8)
        #expect(result.significant.allSatisfy { $0 })
        #expect(result.summary.contains("100.0% of the image differs significantly"))
        #expect(result.groupHeatmaps.keys.sorted() == ["A", "B"])
    }

    @Test func threeGroupsCompareEachAgainstTheRest() throws {
        let values = (0..<9 * 4).map { Float(($0 / 4) % 3 == 0 ? ($0 % 4 == 0 ? 1 : 0) : 0.25) }
        let groups = (0..<9).map { ["x", "y", "z"][$0 % 3] }
        let result = try AttentionOverlapResult.compare(Tensor(shape: [9, 2, 2], scalars: values), groups: groups)
        #expect(result.pairwiseOverlap.count == 3)
        #expect(result.oneVersusRest.keys.sorted() == ["x", "y", "z"])
        #expect(result.divergencePair.first == "x")
        #expect(throws: (any Error).self) { try AttentionOverlapResult.compare(Tensor(shape: [2, 1, 1], scalars: [Float(1), 2]), groups: ["a", "a"]) }
    }
}

@Suite struct RegionTests {
    /// C2: `x + width` overflowed for a rectangle near Int.max.
    @Test func rectanglesNearIntMaxAreRefused() {
        for rectangle in [(x: Int.max, y: 0, width: 1, height: 1), (0, 0, Int.max, 1), (0, Int.max, 1, Int.max), (-1, 0, 1, 1)] {
            #expect(throws: AuditError.self) { try RegionMask(rectangles: [rectangle], height: 64, width: 64) }
        }
        #expect(throws: AuditError.self) { try RegionMask(rectangles: [(0, 0, 1, 1)], height: Int.max, width: 2) }
        #expect(throws: AuditError.self) { try RegionMask(height: Int.max, width: 2, inside: []) }
    }

    @Test func scoresFollowTheirDefinitions() throws {
        let mask = try RegionMask(rectangles: [(x: 0, y: 0, width: 2, height: 1)], height: 2, width: 2)
        #expect(mask.area == 0.5)
        let scores = RegionScores(heatmap: [0.6, 0.2, 0.2, 0.0], mask: mask, iouFraction: 0.5)
        #expect(abs(scores.inMask - 0.8) < 1e-6)
        #expect(scores.pointingHit)
        #expect(scores.iou == 0.5)  // only the 0.6 pixel is >= 0.3: 1 shared of 2 in the union
        #expect(RegionScores(heatmap: [0, 0, 0, 0], mask: mask).inMask == 0)
        #expect(errorText { try RegionMask(rectangles: [(x: 1, y: 1, width: 2, height: 2)], height: 2, width: 2) }.contains("does not lie inside"))
    }

    @Test func csvRowsWithQuotesAndOptionalLabels() throws {
        let folder = try Fixtures.temporaryDirectory()
        let url = folder.appendingPathComponent("groups.csv")
        try "file,group,label\n\"a,b.png\",\"site \"\"1\"\"\",3\nc.png,site 2,\n".write(to: url, atomically: true, encoding: .utf8)
        let samples = try AuditSample.read(csv: url)
        #expect(samples == [AuditSample(file: "a,b.png", group: "site \"1\"", label: 3), AuditSample(file: "c.png", group: "site 2", label: nil)])
        try "name,group\nx.png,a\n".write(to: url, atomically: true, encoding: .utf8)
        #expect(errorText { try AuditSample.read(csv: url) }.contains("needs a header with 'file' and 'group'"))
    }

    @Test func batchesAlignAcrossShardsAndRepeatsAreReportedOnce() throws {
        let folder = try Fixtures.temporaryDirectory()
        let csv = folder.appendingPathComponent("groups.csv")
        // Row 3 repeats row 0's file (written differently: the paths are compared once resolved).
        try "file,group\n0.png,g\n1.png,g\n2.png,g\n./0.png,g\n3.png,g\n4.png,g\n5.png,g\n6.png,g\n".write(to: csv, atomically: true, encoding: .utf8)
        let input = try AuditInput(csv: csv, folder: folder)
        #expect(input.count == 8)
        func batches(_ part: Int, _ parts: Int) throws -> [[Int]] {
            try Array(input.batches(batchSize: 3, part: part, of: parts)).map { try $0.get().items.map(\.index) }
        }
        // Batches of three audited rows; the repeat travels with the batch that was filling.
        #expect(try batches(1, 1) == [[0, 1, 2], [3, 4, 5, 6], [7]])
        #expect(try batches(2, 2) == [[3, 4, 5, 6]])
        let repeat_ = try #require(try Array(input.batches(batchSize: 3)).flatMap { try $0.get().items }.first { $0.index == 3 })
        #expect(repeat_.duplicateOf == 0)
    }
}

@testable import Detectors
import Foundation
import TensorCore
import TestSupport
import Testing

@Suite struct SpRAyTests {
    /// Maps of 8x8 with a hot spot in one of three places (plus seeded noise): three clusters.
    func maps(_ spots: [Int], seed: UInt64 = 1) -> [Float] {
        var random = SeededGenerator(seed: seed)
        return spots.flatMap { spot -> [Float] in
            (0..<64).map { p in
                let (y, x) = (p / 8, p % 8)
                let (cy, cx) = [(1, 1), (1, 6), (6, 3)][spot]
                let d = Double((y - cy) * (y - cy) + (x - cx) * (x - cx))
                return Float(exp(-d / 2) + 0.05 * random.uniform(0...1))
            }
        }
    }

    @Test func clustersFollowWhereTheMapsLook() throws {
        let spots = (0..<30).map { $0 % 3 }
        let result = try SpRAy.fit(maps: maps(spots), count: 30, height: 8, width: 8, groups: nil, labels: nil)
        #expect(result.clusterCount == 3)
        // Same partition as the spots (clusters are numbered by size, then first member).
        for i in 0..<30 { for j in 0..<30 { #expect((result.labels[i] == result.labels[j]) == (spots[i] == spots[j])) } }
        #expect(result.eigenvalues.count == 12 && abs(result.eigenvalues[0]) < 1e-9)
        #expect((result.silhouette ?? 0) > 0.5)
        #expect(result.candidates.isEmpty)  // no groups, no candidates
    }

    @Test func aSmallFocusedOneGroupClusterIsACandidate() throws {
        // 24 diffuse-ish maps split between groups, 6 of group A with a sharp corner spot.
        var spots = (0..<24).map { $0 % 2 == 0 ? 1 : 2 }
        spots += Array(repeating: 0, count: 6)
        var values = maps(spots)
        for n in 24..<30 { for p in 0..<64 { values[n * 64 + p] = p == 9 ? 1 : 0.01 * Float(p % 3) } }
        let groups = (0..<24).map { $0 % 4 < 2 ? "A" : "B" } + Array(repeating: "A", count: 6)
        let result = try SpRAy.fit(maps: values, count: 30, height: 8, width: 8, groups: groups, labels: nil)
        let candidates = result.clusters.filter(\.candidate)
        #expect(candidates.count == 1)
        #expect(candidates.first.map { Set($0.members) } == Set(24..<30))
        #expect(candidates.first?.dominantGroup == "A" && candidates.first?.groupPurity == 1)
    }

    @Test func focusAndPurityFollowTheirDefinitions() {
        #expect(abs(SpRAy.focusScore(ArraySlice(Array(repeating: 1, count: 16)))) < 1e-6)  // uniform: entropy is maximal
        #expect(SpRAy.focusScore(ArraySlice([1] + Array(repeating: 0, count: 15))) > 0.99)  // one pixel
        #expect(SpRAy.purity(["a", "b", "b"])! == (2.0 / 3.0, "b"))
        #expect(SpRAy.purity([1, 0])! == (0.5, 0))  // ties to the smallest value
        #expect(SpRAy.minMax([2, 4, 6]) == [0, 0.5, 1])
        var options = SpRAyOptions()
        // The largest gap after the first: 3 clusters here.
        #expect(SpRAy.clusterCount([0, 0.01, 0.02, 0.9, 0.95, 0.96], n: 6, options: options) == 3)
        // From four on, the largest remaining gap (0.9 -> 0.95).
        options.minClusters = 4
        #expect(SpRAy.clusterCount([0, 0.01, 0.02, 0.9, 0.95, 0.96], n: 6, options: options) == 4)
        #expect(SpRAy.renumbered([5, 5, 2, 2, 2, 9]) == [1, 1, 0, 0, 0, 2])
    }

    @Test func refusesTooFewMaps() {
        #expect(throws: DetectorError.self) { try SpRAy.fit(maps: [1, 2], count: 2, height: 1, width: 1, groups: nil, labels: nil) }
    }
}

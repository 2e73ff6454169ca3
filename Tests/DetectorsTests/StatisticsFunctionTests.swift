@testable import Detectors
import Foundation
import TensorCore
import TestSupport
import Testing

/// The statistics against SciPy and statsmodels on cases that reach every branch
/// (Fixtures/detectors/functions.json, from tools/export_detector_goldens.py).
@Suite struct StatisticsFunctionTests {
    let cases: [String: Any]

    init() throws {
        let data = try Data(contentsOf: Fixtures.url("detectors/functions.json"))
        cases = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    @Test func mannWhitneyMatchesSciPyOnEveryBranch() throws {
        let cases = try #require(cases["mannwhitneyu"] as? [[String: Any]])
        #expect(cases.count == 8)
        for entry in cases {
            let x = try #require(entry["x"] as? [Double])
            let y = try #require(entry["y"] as? [Double])
            let result = MannWhitney.test(x, y)
            // U is a sum of half-integers: exact. p within 1e-12 (exact path: a ratio of integer
            // counts; asymptotic: erfc in double precision).
            #expect(result.u == entry["u"] as? Double, "\(entry["name"] ?? "")")
            let p = try #require(entry["p"] as? Double)
            #expect(abs(result.p - p) <= 1e-12 * max(1, p), "\(entry["name"] ?? ""): \(result.p) vs \(p)")
        }
    }

    @Test func fSurvivalMatchesSciPy() throws {
        let cases = try #require(cases["f_sf"] as? [[String: Any]])
        for entry in cases {
            let f = try #require(entry["f"] as? Double)
            let d1 = try #require(entry["d1"] as? Double)
            let d2 = try #require(entry["d2"] as? Double)
            let sf = try #require(entry["sf"] as? Double)
            // The continued fraction converges to 1e-15 per step; 1e-10 relative is plenty for a
            // test that only asks p < 0.01.
            #expect(abs(Distributions.fSurvival(f, d1, d2) - sf) <= 1e-10 * max(sf, 1e-300) + 1e-14, "F(\(f); \(d1), \(d2))")
        }
    }

    @Test func benjaminiHochbergMatchesStatsmodels() throws {
        let entry = try #require(cases["fdr_bh"] as? [String: Any])
        let p = try #require(entry["p"] as? [Double])
        #expect(MultipleTesting.benjaminiHochberg(p, alpha: 0.05) == entry["reject"] as? [Bool])
    }

    @Test func ranksAverageTies() {
        let (ranks, ties) = Ranking.averageRanks([3, 1, 3, 2, 3])
        #expect(ranks == [4, 1, 4, 2, 4])
        #expect(ties == [1, 1, 3])
    }

    @Test func logisticRegressionReachesItsOptimum() {
        // At the optimum of Σ loss + ‖w‖²/2C the gradient vanishes: Xᵀ(σ(Xw + b) − y) + w/C = 0.
        var random = SeededGenerator(seed: 5)
        let n = 200
        let d = 3
        var values: [Double] = []
        var classes: [Int] = []
        for i in 0..<n {
            let c = i % 2
            classes.append(c)
            for j in 0..<d { values.append(random.uniform(-1...1) + (j == 0 ? Double(2 * c - 1) : 0)) }
        }
        let x = Matrix(rows: n, columns: d, values: values)
        let model = LogisticRegression.fit(x, classes: classes, classCount: 2)
        let p = model.probabilities(x)
        for j in 0..<d {
            var gradient = model.weights[j]
            for i in 0..<n { gradient += x[i, j] * (p[i, 1] - Double(classes[i])) }
            #expect(abs(gradient) < 1e-4, "dimension \(j): \(gradient)")
        }
    }

    @Test func symmetricEigenDecomposes() throws {
        // A = V Λ Vᵀ for a random symmetric matrix.
        var random = SeededGenerator(seed: 11)
        let n = 6
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0...i { a[i * n + j] = random.uniform(-1...1); a[j * n + i] = a[i * n + j] } }
        let (values, vectors) = try LAPACK.symmetricEigen(a, n: n)
        #expect(values == values.sorted())
        for i in 0..<n {
            for j in 0..<n {
                let rebuilt = (0..<n).reduce(0.0) { $0 + vectors[$1 * n + i] * values[$1] * vectors[$1 * n + j] }
                #expect(abs(rebuilt - a[i * n + j]) < 1e-12)
            }
        }
        // Without vectors (another LAPACK path, O(n) workspace): the same values within rounding
        // of a well-conditioned 6 x 6 matrix whose entries are at most 1.
        let alone = try LAPACK.symmetricEigen(a, n: n, vectors: false)
        #expect(alone.vectors.isEmpty)
        for (x, y) in zip(alone.values, values) { #expect(abs(x - y) < 1e-12) }
    }
}

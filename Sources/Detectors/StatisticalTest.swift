import TensorCore

/// Per-dimension group differences: the reference's `GroupDiffTest` with SciPy's Mann–Whitney U
/// and statsmodels' Benjamini–Hochberg correction.
public struct StatisticalResult: Sendable, Equatable {
    /// The test, as the reference names it.
    public let test = "mannwhitneyu"
    /// The multiple-testing correction, as statsmodels names it.
    public let correction = "fdr_bh"
    /// The significance level.
    public let alpha: Double
    /// `moderate` when any comparison keeps a significant dimension after correction, else `low`.
    public let risk: RiskLevel
    /// Two groups: one comparison. More: every pair, then each group against the rest.
    public let comparisons: [Comparison]

    /// One comparison of two sets of samples, every dimension tested.
    public struct Comparison: Sendable, Equatable {
        /// The two sides; the second is `"rest"` for a group against all others.
        public let groups: [String]
        /// Each dimension's p-value before the correction.
        public let pValues: [Double]
        /// Dimensions significant after the correction.
        public let significant: Int
        /// Dimensions with `p < alpha` before it.
        public let significantUncorrected: Int
        /// The significant dimensions, ascending.
        public let features: [Int]
        /// Per dimension, the rank-biserial correlation `2U/(n₁n₂) − 1`: +1 when every sample of
        /// the first side exceeds every sample of the second, −1 the other way round.
        public let effectSizes: [Double]
    }

    /// Any comparison keeps a significant dimension.
    public var detected: Bool { comparisons.contains { $0.significant > 0 } }
}

enum StatisticalTest {
    static func run(_ x: Matrix, classes: [Int], names: [String], alpha: Double) -> StatisticalResult {
        let k = names.count
        var sides: [([String], [Bool], [Bool])] = []  // names, first side, second side
        if k == 2 {
            sides.append(([names[0], names[1]], classes.map { $0 == 0 }, classes.map { $0 == 1 }))
        } else {
            for a in 0..<k {
                for b in a + 1..<k { sides.append(([names[a], names[b]], classes.map { $0 == a }, classes.map { $0 == b })) }
            }
            for a in 0..<k { sides.append(([names[a], "rest"], classes.map { $0 == a }, classes.map { $0 != a })) }
        }
        let comparisons = sides.map { names, first, second in
            compare(x, first: first, second: second, names: names, alpha: alpha)
        }
        let risk: RiskLevel = comparisons.contains { $0.significant > 0 } ? .moderate : .low
        return StatisticalResult(alpha: alpha, risk: risk, comparisons: comparisons)
    }

    private static func compare(_ x: Matrix, first: [Bool], second: [Bool], names: [String], alpha: Double)
        -> StatisticalResult.Comparison
    {
        let a = (0..<x.rows).filter { first[$0] }
        let b = (0..<x.rows).filter { second[$0] }
        var p = [Double](repeating: .nan, count: x.columns)
        var effect = [Double](repeating: .nan, count: x.columns)
        let pairs = Double(a.count) * Double(b.count)
        p.withUnsafeMutableBufferPointer { pOut in
            effect.withUnsafeMutableBufferPointer { effectOut in
                Parallel.forEach(x.columns, grain: max(1, 20_000 / max(x.rows, 1))) { dimensions in
                    for j in dimensions {
                        let result = MannWhitney.test(a.map { x[$0, j] }, b.map { x[$0, j] })
                        pOut[j] = result.p
                        effectOut[j] = 2 * result.u / pairs - 1
                    }
                }
            }
        }
        let corrected = MultipleTesting.benjaminiHochberg(p, alpha: alpha)
        let features = corrected.indices.filter { corrected[$0] }
        return .init(
            groups: names, pValues: p, significant: features.count, significantUncorrected: p.filter { $0 < alpha }.count,
            features: features, effectSizes: effect)
    }
}

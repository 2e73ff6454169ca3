import Detectors
import TensorCore

/// The small statistics toolkit audits need: bootstrap intervals, permutation p-values and
/// Benjamini–Hochberg false-discovery control. Everything is deterministic for a given seed
/// (``SeededGenerator``), so sharded and single runs agree exactly.
package enum Statistics {
    /// The 95% percentile-bootstrap interval of the mean of `values`: 2,000 Poisson resamples
    /// (each value weighted by a Poisson(1) draw per resample, see ``PoissonWeights``), the
    /// 2.5th and 97.5th percentiles of their means.
    package static func bootstrapMeanInterval(_ values: [Double], seed: UInt64) -> (Double, Double) {
        Estimate.of(values, seed: seed)?.ci95 ?? (0, 0)
    }

    /// Linear-interpolated quantile of sorted values (NumPy's default).
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }

    /// Two-sided permutation p-values of the per-feature difference in means between the samples
    /// in `inGroup` and the rest: `(1 + #{|d*| ≥ |d|}) / (1 + permutations)`.
    /// - Parameter values: Samples x features, row-major.
    package static func permutationPValues(
        _ values: [Float], samples: Int, features: Int, inGroup: [Bool], permutations: Int = 1000, seed: UInt64
    ) -> [Double] {
        let first = inGroup.filter { $0 }.count
        guard first > 0, first < samples else { return Array(repeating: 1, count: features) }
        func differences(_ labels: [Bool]) -> [Double] {
            var a = [Double](repeating: 0, count: features)
            var b = [Double](repeating: 0, count: features)
            for s in 0..<samples {
                let row = s * features
                if labels[s] { for f in 0..<features { a[f] += Double(values[row + f]) } } else {
                    for f in 0..<features { b[f] += Double(values[row + f]) }
                }
            }
            return (0..<features).map { a[$0] / Double(first) - b[$0] / Double(samples - first) }
        }
        let observed = differences(inGroup).map(abs)
        var exceed = [Int](repeating: 0, count: features)
        var generator = SeededGenerator(seed: seed)
        var labels = inGroup
        for _ in 0..<permutations {
            // Fisher–Yates shuffle of the group labels.
            for i in stride(from: samples - 1, to: 0, by: -1) { labels.swapAt(i, generator.index(i + 1)) }
            let permuted = differences(labels)
            for f in 0..<features where abs(permuted[f]) >= observed[f] - 1e-12 { exceed[f] += 1 }
        }
        return exceed.map { Double(1 + $0) / Double(1 + permutations) }
    }

    /// Benjamini–Hochberg: which hypotheses are discoveries at false-discovery rate `q`.
    package static func benjaminiHochberg(_ pValues: [Double], q: Double = 0.05) -> [Bool] {
        MultipleTesting.benjaminiHochberg(pValues, alpha: q)
    }
}

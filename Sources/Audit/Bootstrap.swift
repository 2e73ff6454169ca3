import TensorCore

/// Bootstrap resampling that reads each sample once, in order: the Poisson bootstrap.
///
/// The classical bootstrap draws `n` samples with replacement, which needs every value at hand.
/// Here every resample gives each sample a weight drawn from Poisson(1) (the number of times
/// it is drawn, which is Binomial(n, 1/n) in the classical scheme and tends to Poisson(1)), so
/// a resample's mean `Σ wᵢxᵢ / Σ wᵢ` is built as the samples stream past, in `O(resamples)`
/// memory however many samples there are (Hanley & MacGibbon 2006; Chamandy et al. 2012).
/// Resamples that drew no sample at all are left out. One set of weights per sample serves
/// every statistic of its group, so all of a group's intervals come from the same resamples.
struct PoissonWeights {
    /// Resamples per interval.
    static let resamples = 2000

    private var generator: SeededGenerator
    /// The current sample's weight in each resample.
    private(set) var current: [UInt8]

    init(seed: UInt64) {
        generator = SeededGenerator(seed: seed)
        current = [UInt8](repeating: 0, count: Self.resamples)
    }

    /// Draws the next sample's weights.
    mutating func next() {
        current.withUnsafeMutableBufferPointer { weights in
            var r = 0
            while r < weights.count {
                let bits = generator.next()
                weights[r] = Self.poisson(UInt32(truncatingIfNeeded: bits))
                if r + 1 < weights.count { weights[r + 1] = Self.poisson(UInt32(truncatingIfNeeded: bits >> 32)) }
                r += 2
            }
        }
    }

    /// Poisson(1) by inversion of a 32-bit uniform: the first k whose cumulative probability exceeds it.
    @inline(__always) private static func poisson(_ u: UInt32) -> UInt8 {
        var k: UInt8 = 0
        while Int(k) < thresholds.count, u >= thresholds[Int(k)] { k += 1 }
        return k
    }

    /// `P(X ≤ k)` for Poisson(1), k = 0, 1, …, scaled to 2³²; beyond the last, the remaining
    /// probability is under 2⁻³².
    private static let thresholds: [UInt32] = {
        var result: [UInt32] = []
        var term = 1.0 / 2.718281828459045235360287
        var cumulative = 0.0
        for k in 1...14 {
            cumulative += term
            let scaled = (cumulative * 4_294_967_296).rounded(.down)
            guard scaled < 4_294_967_295 else { break }
            result.append(UInt32(scaled))
            term /= Double(k)
        }
        return result
    }()
}

/// A mean and its resampled means, filled one sample at a time (see ``PoissonWeights``).
struct BootstrapMean {
    private(set) var count = 0
    private(set) var sum = 0.0
    private var sums: [Double]
    private var weights: [UInt32]

    init() {
        sums = [Double](repeating: 0, count: PoissonWeights.resamples)
        weights = [UInt32](repeating: 0, count: PoissonWeights.resamples)
    }

    /// Adds a sample with its weights in each resample.
    mutating func add(_ x: Double, _ w: PoissonWeights) {
        count += 1
        sum += x
        w.current.withUnsafeBufferPointer { draws in
            sums.withUnsafeMutableBufferPointer { sums in
                weights.withUnsafeMutableBufferPointer { weights in
                    for r in 0..<draws.count {
                        let weight = draws[r]
                        weights[r] &+= UInt32(weight)
                        sums[r] += Double(weight) * x
                    }
                }
            }
        }
    }

    /// The mean and the 2.5th and 97.5th percentiles of the resampled means, or `nil` without samples.
    var estimate: Estimate? {
        guard count > 0 else { return nil }
        let mean = sum / Double(count)
        var means: [Double] = []
        means.reserveCapacity(sums.count)
        for (s, w) in zip(sums, weights) where w > 0 { means.append(s / Double(w)) }
        means.sort()
        guard !means.isEmpty else { return Estimate(value: mean, ci95: (mean, mean)) }
        return Estimate(value: mean, ci95: (Statistics.quantile(means, 0.025), Statistics.quantile(means, 0.975)))
    }
}

@testable import Audit
import Foundation
import TensorCore
import Testing

@Suite struct BootstrapTests {
    /// The weights are Poisson(1): over 2,000 resamples x 100 samples their mean and variance are
    /// 1 within sampling error (standard error 0.0022 for the mean and 0.0032 for the variance: 0.015 is 5 of them).
    @Test func weightsArePoissonOne() {
        var weights = PoissonWeights(seed: 3)
        var sum = 0.0
        var squares = 0.0
        var zeros = 0
        let draws = 100 * PoissonWeights.resamples
        for _ in 0..<100 {
            weights.next()
            for w in weights.current {
                sum += Double(w)
                squares += Double(w) * Double(w)
                if w == 0 { zeros += 1 }
            }
        }
        let mean = sum / Double(draws)
        #expect(abs(mean - 1) < 0.015)
        #expect(abs(squares / Double(draws) - mean * mean - 1) < 0.015)
        // P(0) = 1/e; its standard error here is 0.0011.
        #expect(abs(Double(zeros) / Double(draws) - exp(-1)) < 0.006)
    }

    /// For a large sample the percentile interval of the mean is the normal one, mean ± 1.96 SE:
    /// within 10% of its half-width (the 2.5th and 97.5th percentiles of 2,000 resampled means
    /// are themselves estimated to about 4%).
    @Test func intervalsMatchNormalTheoryForLargeSamples() {
        var random = SeededGenerator(seed: 11)
        let values = (0..<2000).map { _ in random.uniform(0...1) < 0.3 ? 1.0 : 0.0 }
        let mean = values.reduce(0, +) / Double(values.count)
        let halfWidth = 1.96 * (mean * (1 - mean) / Double(values.count)).squareRoot()
        let (low, high) = Statistics.bootstrapMeanInterval(values, seed: 5)
        #expect(abs((mean - low) - halfWidth) < 0.1 * halfWidth, "\(low) \(mean) \(high) \(halfWidth)")
        #expect(abs((high - mean) - halfWidth) < 0.1 * halfWidth, "\(low) \(mean) \(high) \(halfWidth)")
        // The same seed, the same interval; a single value is its own interval.
        #expect(Statistics.bootstrapMeanInterval(values, seed: 5) == (low, high))
        #expect(Statistics.bootstrapMeanInterval([0.25], seed: 5) == (0.25, 0.25))
    }

    /// A group's statistics share its resamples: with every record labelled and counterfactual,
    /// the accuracy and flip-rate intervals are exactly those of the bootstrap of their 0/1
    /// values with the group's seed, and the means are plain counts.
    @Test func groupStatisticsShareTheGroupsResamples() throws {
        let records = (0..<50).map { n in
            var record = SampleRecord(
                index: n, file: "\(n).png", group: "g", label: n % 2, predicted: n % 3 == 0 ? 1 : 0, confidence: 0.5 + Double(n) / 200,
                target: 0, scores: nil)
            record.counterfactual = CounterfactualRecord(predicted: n % 5 == 0 ? 1 : 0, confidence: 0.4)
            return record
        }
        var group = GroupAccumulator(seed: 9, threshold: 0.1)
        for record in records { group.add(record) }
        let summary = group.summary
        let correct = records.map { $0.label == $0.predicted ? 1.0 : 0.0 }
        let flips = records.map { $0.counterfactual?.predicted != $0.predicted ? 1.0 : 0.0 }
        #expect(summary.n == 50 && summary.accuracy == correct.reduce(0, +) / 50)
        #expect(try #require(summary.accuracyCI95) == (try #require(Estimate.of(correct, seed: 9))).ci95)
        let counterfactual = try #require(summary.counterfactual)
        #expect(counterfactual.flipRate == Estimate.of(flips, seed: 9))
        #expect(counterfactual.byLabel.keys.sorted() == [0, 1] && counterfactual.byLabel[0]?.n == 25)
        #expect(summary.maskAttentionMean == nil && summary.byLabel[1]?.accuracy == Double(records.filter { $0.label == 1 && $0.predicted == 1 }.count) / 25)
    }
}

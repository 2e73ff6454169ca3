import Foundation

/// A mean with its 95% percentile-bootstrap interval.
public struct Estimate: Sendable, Equatable {
    /// The mean.
    public let value: Double
    /// The 95% percentile-bootstrap interval of the mean, low and high.
    public let ci95: (Double, Double)

    /// Equal means and equal intervals.
    public static func == (a: Estimate, b: Estimate) -> Bool { a.value == b.value && a.ci95 == b.ci95 }

    /// The mean of `values` and its interval (``Statistics/bootstrapMeanInterval(_:seed:)``), or `nil` without values.
    static func of(_ values: [Double], seed: UInt64) -> Estimate? {
        var weights = PoissonWeights(seed: seed)
        var mean = BootstrapMean()
        for value in values {
            weights.next()
            mean.add(value, weights)
        }
        return mean.estimate
    }

    var json: [String: Any] { ["value": value, "ci95": [ci95.0, ci95.1]] }
}

/// What filling the region did to some samples' predictions.
public struct CounterfactualSummary: Sendable {
    /// How many samples the summary covers.
    public let n: Int
    /// The share of predictions that changed.
    public let flipRate: Estimate
    /// The mean drop in the probability of the originally predicted class.
    public let confidenceDrop: Estimate
    /// Accuracy before and after filling, over the labelled samples.
    public let accuracy: Estimate?
    /// Accuracy after filling, over the same labelled samples.
    public let accuracyCounterfactual: Estimate?
    /// The same per label (the samples with that label), keyed by label.
    public let byLabel: [Int: CounterfactualSummary]

    /// The summary of `records`, each with its counterfactual; `seed` keeps the intervals reproducible.
    static func of(_ records: [SampleRecord], seed: UInt64) -> CounterfactualSummary? {
        var weights = PoissonWeights(seed: seed)
        var accumulator = CounterfactualAccumulator()
        for record in records {
            weights.next()
            accumulator.add(record, weights)
        }
        return accumulator.summary
    }

    var json: [String: Any] {
        var entry: [String: Any] = [
            "n": n, "flip_rate": flipRate.value, "flip_rate_ci95": [flipRate.ci95.0, flipRate.ci95.1],
            "confidence_drop": confidenceDrop.value, "confidence_drop_ci95": [confidenceDrop.ci95.0, confidenceDrop.ci95.1],
        ]
        if let accuracy {
            entry["accuracy"] = accuracy.value
            entry["accuracy_ci95"] = [accuracy.ci95.0, accuracy.ci95.1]
        }
        if let after = accuracyCounterfactual {
            entry["accuracy_counterfactual"] = after.value
            entry["accuracy_counterfactual_ci95"] = [after.ci95.0, after.ci95.1]
        }
        if !byLabel.isEmpty { entry["by_label"] = Dictionary(uniqueKeysWithValues: byLabel.map { (String($0.key), $0.value.json) }) }
        return entry
    }
}

/// How faithful some samples' maps are, on average.
public struct FaithfulnessSummary: Sendable {
    /// How many samples have faithfulness scores.
    public let n: Int
    /// pytorch-grad-cam's `CamMultImageConfidenceChange`: the mean change of the class score when the input is multiplied by its map.
    public let camMultConfidenceChange: Estimate
    /// The mean drop in the class score on the multiplied input (pytorch-grad-cam's `DropInConfidence`).
    public let dropInConfidence: Double
    /// The share of samples whose multiplied input scores higher.
    public let increaseInConfidence: Double
    /// Per percentile (the options' order), the mean change when the most (least) relevant pixels are imputed.
    public let roadMostRelevantFirst: [Double]
    /// Per percentile, the mean change when the least relevant pixels are imputed first.
    public let roadLeastRelevantFirst: [Double]
    /// ROAD's combined score: least-relevant-first minus most-relevant-first, averaged over the percentiles.
    public let roadCombined: Estimate

    func json(percentiles: [Int]) -> [String: Any] {
        [
            "n": n, "cam_mult_confidence_change": camMultConfidenceChange.value,
            "cam_mult_confidence_change_ci95": [camMultConfidenceChange.ci95.0, camMultConfidenceChange.ci95.1],
            "drop_in_confidence": dropInConfidence, "increase_in_confidence": increaseInConfidence,
            "road_most_relevant_first": Dictionary(uniqueKeysWithValues: zip(percentiles.map(String.init), roadMostRelevantFirst).map { ($0, $1) }),
            "road_least_relevant_first": Dictionary(uniqueKeysWithValues: zip(percentiles.map(String.init), roadLeastRelevantFirst).map { ($0, $1) }),
            "road_combined": roadCombined.value, "road_combined_ci95": [roadCombined.ci95.0, roadCombined.ci95.1],
        ]
    }
}

/// In-region attention and accuracy of the samples of one label within a group.
public struct LabelSummary: Sendable {
    /// How many samples of the group have this label.
    public let n: Int
    /// Their mean in-region share of attention, when a region was given.
    public let maskAttention: Estimate?
    /// The share of them predicted as their label.
    public let accuracy: Double

    var json: [String: Any] {
        var entry: [String: Any] = ["n": n, "accuracy": accuracy]
        if let m = maskAttention {
            entry["mask_attention_mean"] = m.value
            entry["mask_attention_ci95"] = [m.ci95.0, m.ci95.1]
        }
        return entry
    }
}

/// The largest difference in accuracy between two groups.
public struct AccuracyGap: Sendable {
    /// The group with the highest accuracy.
    public let best: String
    /// The group with the lowest accuracy.
    public let worst: String
    /// The best group's accuracy minus the worst's.
    public let gap: Double
    /// Whether the two groups' 95% intervals of accuracy do not overlap.
    public let flagged: Bool
}

// MARK: - Accumulators

/// One group's numbers, gathered as its samples stream past (in audit order); every interval
/// comes from the group's Poisson resamples (``PoissonWeights``), seeded per group.
struct GroupAccumulator {
    private var weights: PoissonWeights
    private let threshold: Double
    private var n = 0
    private var scored = 0
    private var above = 0
    private var hits = 0
    private var iouSum = 0.0
    private var inMask = BootstrapMean()
    private var accuracy = BootstrapMean()
    private var labels: [Int: (n: Int, correct: Int, inMask: BootstrapMean)] = [:]
    private var counterfactual = CounterfactualAccumulator()
    private var faithfulness = FaithfulnessAccumulator()

    init(seed: UInt64, threshold: Double) {
        weights = PoissonWeights(seed: seed)
        self.threshold = threshold
    }

    mutating func add(_ record: SampleRecord) {
        weights.next()
        n += 1
        if let scores = record.scores {
            scored += 1
            if scores.inMask > threshold { above += 1 }
            if scores.pointingHit { hits += 1 }
            iouSum += scores.iou
            inMask.add(scores.inMask, weights)
        }
        if let label = record.label {
            accuracy.add(label == record.predicted ? 1 : 0, weights)
            var entry = labels[label] ?? (0, 0, BootstrapMean())
            entry.n += 1
            if record.predicted == label { entry.correct += 1 }
            if let scores = record.scores { entry.inMask.add(scores.inMask, weights) }
            labels[label] = entry
        }
        counterfactual.add(record, weights)
        faithfulness.add(record, weights)
    }

    var summary: AuditReport.GroupSummary {
        let hasScores = n > 0 && scored == n
        var byLabel: [Int: LabelSummary] = [:]
        for (label, entry) in labels {
            byLabel[label] = LabelSummary(
                n: entry.n, maskAttention: hasScores ? entry.inMask.estimate : nil, accuracy: Double(entry.correct) / Double(entry.n))
        }
        let attention = hasScores ? inMask.estimate : nil
        let accuracy = accuracy.estimate
        return AuditReport.GroupSummary(
            n: n, maskAttentionMean: attention?.value, maskAttentionCI95: attention?.ci95,
            shareAboveThreshold: hasScores ? Double(above) / Double(n) : nil, pointingGame: hasScores ? Double(hits) / Double(n) : nil,
            iouMean: hasScores ? iouSum / Double(n) : nil, accuracy: accuracy?.value, accuracyCI95: accuracy?.ci95, byLabel: byLabel,
            counterfactual: counterfactual.summary, faithfulness: faithfulness.summary)
    }
}

/// The counterfactual test's numbers over the samples that have one, and per label.
struct CounterfactualAccumulator {
    private var flips = BootstrapMean()
    private var drop = BootstrapMean()
    private var accuracy = BootstrapMean()
    private var accuracyAfter = BootstrapMean()
    private var byLabel: [Int: CounterfactualAccumulator] = [:]
    private let perLabel: Bool

    init(perLabel: Bool = true) { self.perLabel = perLabel }

    mutating func add(_ record: SampleRecord, _ weights: PoissonWeights) {
        guard let after = record.counterfactual else { return }
        flips.add(after.predicted != record.predicted ? 1 : 0, weights)
        drop.add(record.confidence - after.confidence, weights)
        guard let label = record.label else { return }
        accuracy.add(record.predicted == label ? 1 : 0, weights)
        accuracyAfter.add(after.predicted == label ? 1 : 0, weights)
        if perLabel {
            var entry = byLabel[label] ?? CounterfactualAccumulator(perLabel: false)
            entry.add(record, weights)
            byLabel[label] = entry
        }
    }

    var summary: CounterfactualSummary? {
        guard let flipRate = flips.estimate, let confidenceDrop = drop.estimate else { return nil }
        return CounterfactualSummary(
            n: flips.count, flipRate: flipRate, confidenceDrop: confidenceDrop, accuracy: accuracy.estimate,
            accuracyCounterfactual: accuracyAfter.estimate, byLabel: byLabel.compactMapValues(\.summary))
    }
}

/// The faithfulness metrics' means over the samples that have them.
struct FaithfulnessAccumulator {
    private var change = BootstrapMean()
    private var combined = BootstrapMean()
    private var drop = 0.0
    private var increase = 0.0
    private var mostRelevant: [Double] = []
    private var leastRelevant: [Double] = []

    mutating func add(_ record: SampleRecord, _ weights: PoissonWeights) {
        guard let scores = record.faithfulness else { return }
        change.add(scores.camMultConfidenceChange, weights)
        combined.add(scores.roadCombined, weights)
        drop += scores.dropInConfidence
        increase += scores.increaseInConfidence
        if mostRelevant.isEmpty {
            mostRelevant = [Double](repeating: 0, count: scores.roadMostRelevantFirst.count)
            leastRelevant = [Double](repeating: 0, count: scores.roadLeastRelevantFirst.count)
        }
        for (p, value) in scores.roadMostRelevantFirst.enumerated() where p < mostRelevant.count { mostRelevant[p] += value }
        for (p, value) in scores.roadLeastRelevantFirst.enumerated() where p < leastRelevant.count { leastRelevant[p] += value }
    }

    var summary: FaithfulnessSummary? {
        guard let changeEstimate = change.estimate, let combinedEstimate = combined.estimate else { return nil }
        let n = Double(change.count)
        return FaithfulnessSummary(
            n: change.count, camMultConfidenceChange: changeEstimate, dropInConfidence: drop / n, increaseInConfidence: increase / n,
            roadMostRelevantFirst: mostRelevant.map { $0 / n }, roadLeastRelevantFirst: leastRelevant.map { $0 / n },
            roadCombined: combinedEstimate)
    }
}

import Foundation

/// A mean with its 95% percentile-bootstrap interval.
public struct Estimate: Sendable, Equatable {
    /// The mean.
    public let value: Double
    /// The 95% percentile-bootstrap interval of the mean, low and high.
    public let ci95: (Double, Double)

    /// Equal means and equal intervals.
    public static func == (a: Estimate, b: Estimate) -> Bool { a.value == b.value && a.ci95 == b.ci95 }

    /// The mean of `values` and its interval, or `nil` without values.
    static func of(_ values: [Double], seed: UInt64) -> Estimate? {
        guard !values.isEmpty else { return nil }
        return Estimate(value: values.reduce(0, +) / Double(values.count), ci95: Statistics.bootstrapMeanInterval(values, seed: seed))
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
    static func of(_ records: [SampleRecord], seed: UInt64, perLabel: Bool = true) -> CounterfactualSummary? {
        let rows = records.compactMap { r in r.counterfactual.map { (r, $0) } }
        guard !rows.isEmpty, let flips = Estimate.of(rows.map { $0.1.predicted != $0.0.predicted ? 1 : 0 }, seed: seed),
            let drop = Estimate.of(rows.map { $0.0.confidence - $0.1.confidence }, seed: seed &+ 1)
        else { return nil }
        let labelled = rows.filter { $0.0.label != nil }
        var byLabel: [Int: CounterfactualSummary] = [:]
        if perLabel {
            for label in Set(labelled.compactMap(\.0.label)).sorted() {
                byLabel[label] = of(records.filter { $0.label == label }, seed: seed &+ 16 &* UInt64(truncatingIfNeeded: label &+ 1), perLabel: false)
            }
        }
        return CounterfactualSummary(
            n: rows.count, flipRate: flips, confidenceDrop: drop,
            accuracy: Estimate.of(labelled.map { $0.0.predicted == $0.0.label ? 1 : 0 }, seed: seed &+ 2),
            accuracyCounterfactual: Estimate.of(labelled.map { $0.1.predicted == $0.0.label ? 1 : 0 }, seed: seed &+ 3), byLabel: byLabel)
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

    static func of(_ records: [SampleRecord], seed: UInt64) -> FaithfulnessSummary? {
        let scores = records.compactMap(\.faithfulness)
        guard let first = scores.first, let change = Estimate.of(scores.map(\.camMultConfidenceChange), seed: seed),
            let combined = Estimate.of(scores.map(\.roadCombined), seed: seed &+ 1)
        else { return nil }
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }
        return FaithfulnessSummary(
            n: scores.count, camMultConfidenceChange: change, dropInConfidence: mean(scores.map(\.dropInConfidence)),
            increaseInConfidence: mean(scores.map(\.increaseInConfidence)),
            roadMostRelevantFirst: first.roadMostRelevantFirst.indices.map { p in mean(scores.map { $0.roadMostRelevantFirst[p] }) },
            roadLeastRelevantFirst: first.roadLeastRelevantFirst.indices.map { p in mean(scores.map { $0.roadLeastRelevantFirst[p] }) },
            roadCombined: combined)
    }

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

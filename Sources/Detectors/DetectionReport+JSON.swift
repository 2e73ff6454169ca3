import Foundation

extension DetectionReport {
    /// The report as `detect.json`: sorted keys, non-finite numbers as `null`.
    public func json() throws -> Data {
        try JSONSerialization.data(withJSONObject: jsonObject(), options: [.prettyPrinted, .sortedKeys])
    }

    /// The report as JSON-compatible dictionaries (also embedded in the audit's summary).
    public func jsonObject() -> [String: Any] {
        var methods: [String: Any] = [:]
        if let p = probe {
            methods["probe"] = [
                "metric": p.metric, "value": number(p.value), "threshold": p.threshold, "detected": p.detected,
                "accuracy": number(p.accuracy), "roc_auc": number(p.rocAUC), "risk": p.risk.rawValue,
                "linear_detected": p.linearDetected, "n_train": p.trainCount, "n_test": p.testCount,
                "nonlinear": [
                    "model": p.nonlinear.model, "value": number(p.nonlinear.value), "accuracy": number(p.nonlinear.accuracy),
                    "detected": p.nonlinear.detected,
                ] as [String: Any],
            ] as [String: Any]
        }
        if let s = statistical {
            methods["statistical"] = [
                "test": s.test, "correction": s.correction, "alpha": s.alpha, "risk": s.risk.rawValue,
                "comparisons": s.comparisons.map { c -> [String: Any] in
                    [
                        "groups": c.groups, "significant": c.significant, "significant_uncorrected": c.significantUncorrected,
                        "features": c.features, "effect_sizes": c.features.map { number(c.effectSizes[$0]) },
                        "p_values": c.pValues.map(number),
                    ]
                },
            ] as [String: Any]
        }
        if let h = hbac {
            methods["hbac"] = [
                "detected": h.detected, "clusters": h.clusters.count, "purity": number(h.purity),
                "linear_accuracy": number(h.linearAccuracy), "risk": h.risk.rawValue, "confidence": h.confidence.rawValue,
                "types": h.types, "high_purity_clusters": h.highPurityClusters,
                "important_dims_ratio": number(h.importantDimensionsRatio),
                "leaves": h.clusters.map { ["size": $0.size, "purity": number($0.purity), "dominant": $0.dominant, "depth": $0.depth] },
            ] as [String: Any]
        }
        if let g = geometric {
            methods["geometric"] = [
                "risk": g.risk.rawValue, "skipped_groups": g.skippedGroups,
                "pairs": g.pairs.map { p -> [String: Any] in
                    [
                        "groups": p.groups, "effect_size": number(p.effectSize), "alignment": number(p.alignment),
                        "projection_gap": number(p.projectionGap), "mean_cosine": number(p.meanCosine),
                        "min_angle_deg": number(p.minAngleDegrees), "max_angle_deg": number(p.maxAngleDegrees),
                    ]
                },
            ] as [String: Any]
        }
        var root: [String: Any] = [
            "n": n, "dim": dim, "groups": groups, "methods": methods,
            "overall": ["risk": overall.risk.rawValue, "summary": overall.summary, "indicators": overall.indicators.map(\.rawValue)],
        ]
        if !skipped.isEmpty {
            root["skipped"] = Dictionary(uniqueKeysWithValues: skipped.map { ($0.key.rawValue, $0.value) })
        }
        return root
    }
}

/// A JSON number, or `null` where JSON has none (NaN, infinities).
func number(_ value: Double) -> Any {
    value.isFinite ? value : NSNull()
}

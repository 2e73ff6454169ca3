import Detectors
import Foundation

extension AuditReport {
    func summaryJSON() throws -> Data {
        let c = config
        var groupEntries: [String: Any] = [:]
        for (name, g) in groups {
            var entry: [String: Any] = ["n": g.n]
            if let m = g.maskAttentionMean { entry["mask_attention_mean"] = m }
            if let ci = g.maskAttentionCI95 { entry["mask_attention_ci95"] = [ci.0, ci.1] }
            if let s = g.shareAboveThreshold { entry["share_above_threshold"] = s }
            if let p = g.pointingGame { entry["pointing_game"] = p }
            if let i = g.iouMean { entry["iou_mean"] = i }
            if let a = g.accuracy { entry["accuracy"] = a }
            if let ci = g.accuracyCI95 { entry["accuracy_ci95"] = [ci.0, ci.1] }
            if !g.byLabel.isEmpty { entry["by_label"] = Dictionary(uniqueKeysWithValues: g.byLabel.map { (String($0.key), $0.value.json) }) }
            if let cf = g.counterfactual { entry["counterfactual"] = cf.json.merging(["fill": c.counterfactual ?? ""]) { a, _ in a } }
            if let f = g.faithfulness { entry["faithfulness"] = f.json(percentiles: c.faithfulness?.percentiles ?? []) }
            groupEntries[name] = entry
        }
        var root: [String: Any] = [
            "n": count, "layer": c.layer, "tensor": c.tensor, "method": c.method,
            "maps": c.maps, "target": c.target, "model": c.model, "output_kind": c.outputKind ?? "auto",
            "preprocessing": preprocessingJSON(), "summary": summary, "groups": groupEntries, "threshold": c.threshold,
        ]
        if let comparison {
            root["overlap_score"] = comparison.overlapScore
            root["pairwise_overlap"] = Dictionary(uniqueKeysWithValues: comparison.pairwiseOverlap.map { ($0.key.description, $0.value) })
            root["divergence_pair"] = [comparison.divergencePair.first, comparison.divergencePair.second]
            root["significant_share"] = Double(comparison.significant.filter { $0 }.count) / Double(max(comparison.significant.count, 1))
        }
        if let mask = c.mask {
            var entry: [String: Any] = ["region": mask, "area": c.maskArea ?? 0]
            if let space = c.maskSpace { entry["space"] = space }
            if let reason = c.maskReason { entry["space_reason"] = reason }
            root["mask"] = entry
        }
        if let fill = c.counterfactual {
            root["counterfactual"] = [
                "fill": fill, "seed": Int(c.seed ?? 0),
                "changes_predictions_for": AuditReport.counterfactualFlags(groups, names: groups.keys.sorted()),
                "rule": "a group's predictions depend on the region when the lower end of the 95% interval of its flip rate is at least 5%",
            ] as [String: Any]
        }
        if let options = c.faithfulness {
            root["faithfulness"] = [
                "road_percentiles": options.percentiles, "seed": Int(options.seed),
                "score": "the probability of the explained class (pytorch-grad-cam's ClassifierOutputSoftmaxTarget)",
            ] as [String: Any]
        }
        if let gap = accuracyGap {
            root["accuracy_gap"] = ["best": gap.best, "worst": gap.worst, "gap": gap.gap, "flagged": gap.flagged] as [String: Any]
        }
        if let spray { root["spray"] = sprayJSON(spray) }
        if let sprayNote { root["spray_note"] = sprayNote }
        if let detection {
            var entry = detection.jsonObject()
            entry["layer"] = c.embedLayer
            entry["tensor"] = c.embedTensor
            root["detection"] = entry
        }
        if let detectionNote { root["detection_note"] = detectionNote }
        if skipped > 0 {
            root["skipped"] = [
                "unusable": digest.skipped[.unusable] ?? 0, "duplicate": digest.skipped[.duplicate] ?? 0,
                "note": "listed in samples.csv with the reason; not part of any number above",
            ] as [String: Any]
        }
        if digest.subsample.step > 1 {
            root["subsample"] = [
                "step": digest.subsample.step, "n": digest.subsample.count,
                "note": "the permutation test, spectral relevance analysis and the embedding detectors read every step-th sample; every other number reads all",
            ] as [String: Any]
        }
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }

    /// The transform as the images met it: its settings and how many images went through it.
    func preprocessingJSON() -> [String: Any] {
        guard let t = config.transform else { return ["description": config.preprocessing] }
        return [
            "description": t.summary, "resize": t.resize.map { $0 as Any } ?? NSNull(), "crop": t.crop.map { $0 as Any } ?? NSNull(),
            "mean": t.mean.map(decimal), "std": t.std.map(decimal), "input_sized_as_is": t.inputSizedAsIs,
            "images_as_is": digest.imagesAsIs, "images_transformed": count - digest.imagesAsIs, "image_sizes": digest.imageSizes,
        ]
    }

    func sprayJSON(_ result: SpRAyResult) -> [String: Any] {
        let grid = digest.grid
        return [
            "n_clusters": result.clusterCount, "laplacian_eigenvalues": result.eigenvalues,
            "silhouette": result.silhouette.map { $0 as Any } ?? NSNull(), "reference_flags": result.referenceFlags,
            "candidates": result.candidates, "grid": [grid.rows, grid.columns],
            "clusters": result.clusters.map { cluster -> [String: Any] in
                var entry: [String: Any] = [
                    "id": cluster.id, "size": cluster.size, "fraction": cluster.fraction, "focus_mean": cluster.focusMean,
                    "focus_std": cluster.focusStd, "candidate": cluster.candidate,
                    "files": cluster.members.map { digest.subsample.files[$0] },
                ]
                if let p = cluster.groupPurity { entry["group_purity"] = p }
                if let g = cluster.dominantGroup { entry["dominant_group"] = g }
                if let p = cluster.labelPurity { entry["label_purity"] = p }
                if let l = cluster.dominantLabel { entry["dominant_label"] = l }
                return entry
            },
        ]
    }
}

/// A float32 setting as the decimal it was written as (0.485, not 0.48500001430511475).
private func decimal(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }

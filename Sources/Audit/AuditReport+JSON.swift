import Detectors
import Foundation

extension AuditReport {
    func summaryJSON() throws -> Data {
        let c = state.config
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
            "n": state.records.count, "layer": c.layer, "tensor": c.tensor, "method": c.method,
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
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }

    /// The transform as the images met it: its settings and how many images went through it.
    func preprocessingJSON() -> [String: Any] {
        guard let t = state.config.transform else { return ["description": state.config.preprocessing] }
        let preprocessing = t.preprocessing
        var sizes: [String: Int] = [:]
        var asIs = 0
        for record in state.records {
            guard let size = record.imageSize, size.count == 2 else { continue }
            sizes["\(size[0])x\(size[1])", default: 0] += 1
            if preprocessing.usesAsIs(width: size[0], height: size[1]) { asIs += 1 }
        }
        return [
            "description": t.summary, "resize": t.resize.map { $0 as Any } ?? NSNull(), "crop": t.crop.map { $0 as Any } ?? NSNull(),
            "mean": t.mean.map(decimal), "std": t.std.map(decimal), "input_sized_as_is": t.inputSizedAsIs,
            "images_as_is": asIs, "images_transformed": state.records.count - asIs, "image_sizes": sizes,
        ]
    }

    func sprayJSON(_ result: SpRAyResult) -> [String: Any] {
        let grid = state.grid
        return [
            "n_clusters": result.clusterCount, "laplacian_eigenvalues": result.eigenvalues,
            "silhouette": result.silhouette.map { $0 as Any } ?? NSNull(), "reference_flags": result.referenceFlags,
            "candidates": result.candidates, "grid": [grid.rows, grid.columns],
            "clusters": result.clusters.map { cluster -> [String: Any] in
                var entry: [String: Any] = [
                    "id": cluster.id, "size": cluster.size, "fraction": cluster.fraction, "focus_mean": cluster.focusMean,
                    "focus_std": cluster.focusStd, "candidate": cluster.candidate,
                    "files": cluster.members.map { state.records[$0].file },
                ]
                if let p = cluster.groupPurity { entry["group_purity"] = p }
                if let g = cluster.dominantGroup { entry["dominant_group"] = g }
                if let p = cluster.labelPurity { entry["label_purity"] = p }
                if let l = cluster.dominantLabel { entry["dominant_label"] = l }
                return entry
            },
        ]
    }

    func samplesCSV() -> String {
        var lines = [
            "file,group,label,predicted_class,confidence,in_mask_fraction,pointing_hit,iou,image_width,image_height,"
                + "counterfactual_predicted,counterfactual_confidence,cam_mult_confidence_change,road_combined"
        ]
        for r in state.records {
            let fields: [String] = [
                csvField(r.file), csvField(r.group), r.label.map(String.init) ?? "", String(r.predicted),
                String(r.confidence), r.scores.map { String($0.inMask) } ?? "",
                r.scores.map { $0.pointingHit ? "1" : "0" } ?? "", r.scores.map { String($0.iou) } ?? "",
                r.imageSize.map { String($0[0]) } ?? "", r.imageSize.map { String($0[1]) } ?? "",
                r.counterfactual.map { String($0.predicted) } ?? "", r.counterfactual.map { String($0.confidence) } ?? "",
                r.faithfulness.map { String($0.camMultConfidenceChange) } ?? "", r.faithfulness.map { String($0.roadCombined) } ?? "",
            ]
            lines.append(fields.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func csvField(_ text: String) -> String {
        text.contains(",") || text.contains("\"") || text.contains("\n") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
}

/// A float32 setting as the decimal it was written as (0.485, not 0.48500001430511475).
private func decimal(_ value: Float) -> Double { Double("\(value)") ?? Double(value) }

import Detectors
import Foundation
import Imaging
import TensorCore

/// Turns an ``AuditState`` into the report folder: `summary.json`, `samples.csv`, group mean and
/// divergence maps, the three-panel comparison, the most and least region-reliant overlays per
/// group, and a self-contained `report.html`. Rendering depends on the state alone, so equal
/// states give byte-identical reports.
public struct AuditReport {
    public let state: AuditState
    public let comparison: AttentionOverlapResult?
    /// Per group: in-region statistics, when a region was given.
    public let groups: [String: GroupSummary]
    /// The embedding detectors on the embed layer's pooled outputs, when they ran.
    public let detection: DetectionReport?
    /// Why the embedding detectors did not run, when they were asked to.
    public let detectionNote: String?
    /// The attention verdict, then the embedding detectors' verdict.
    public let summary: String

    public struct GroupSummary: Sendable {
        public let n: Int
        public let maskAttentionMean: Double?
        public let maskAttentionCI95: (Double, Double)?
        public let shareAboveThreshold: Double?
        public let pointingGame: Double?
        public let iouMean: Double?
        /// Share of samples whose prediction equals their label, when labels are known.
        public let accuracy: Double?
    }

    public init(state: AuditState) throws {
        self.state = state
        let names = Set(state.records.map(\.group)).sorted()
        guard !names.isEmpty else { throw AuditError.invalid("the audit has no samples") }
        var groups: [String: GroupSummary] = [:]
        for (index, name) in names.enumerated() {
            let members = state.records.filter { $0.group == name }
            let inMask = members.compactMap { $0.scores?.inMask }
            let labelled = members.filter { $0.label != nil }
            let hasScores = inMask.count == members.count && !members.isEmpty
            groups[name] = GroupSummary(
                n: members.count,
                maskAttentionMean: hasScores ? inMask.reduce(0, +) / Double(inMask.count) : nil,
                maskAttentionCI95: hasScores ? Statistics.bootstrapMeanInterval(inMask, seed: 0xB007 &+ UInt64(index)) : nil,
                shareAboveThreshold: hasScores ? Double(inMask.filter { $0 > state.config.threshold }.count) / Double(inMask.count) : nil,
                pointingGame: hasScores ? Double(members.filter { $0.scores?.pointingHit == true }.count) / Double(members.count) : nil,
                iouMean: hasScores ? members.compactMap { $0.scores?.iou }.reduce(0, +) / Double(members.count) : nil,
                accuracy: labelled.isEmpty ? nil : Double(labelled.filter { $0.label == $0.predicted }.count) / Double(labelled.count))
        }
        self.groups = groups
        comparison =
            names.count >= 2
            ? try AttentionOverlapResult.compare(
                means: state.means(), pooled: state.pooled, groups: state.records.map(\.group), grid: state.grid,
                options: ComparisonOptions())
            : nil
        (detection, detectionNote) = Self.detect(state, groupCount: names.count)
        summary = [
            AuditReport.sentence(state: state, groups: groups, names: names, comparison: comparison),
            detection.map { "Embedding detectors at \(state.config.embedLayer ?? state.config.layer): \($0.summary)" },
        ].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// The seed's first step: do the embeddings encode the group? The detectors read the groups
    /// alone (the seed's `fit(embeddings, group_labels)`): with the task labels, HBAC would ask
    /// whether the layer separates the classes, which a working classifier's layer always does.
    static func detect(_ state: AuditState, groupCount: Int) -> (DetectionReport?, String?) {
        guard state.config.embedTensor != nil else { return (nil, nil) }
        guard groupCount >= 2 else { return (nil, "the embedding detectors need at least two groups") }
        do {
            let embeddings = try Tensor(shape: [state.records.count, state.embeddingWidth], scalars: state.embeddings)
            return (try ShortcutDetector().fit(embeddings: embeddings, groups: state.records.map(\.group)), nil)
        } catch {
            return (nil, "the embedding detectors did not run: \(error)")
        }
    }

    /// The plain-language verdict: whether the model appears to rely on the region, and for whom.
    ///
    /// A group relies on the region when the lower end of its 95% interval of in-region
    /// attention exceeds twice the share of the image the region covers (what uniform attention
    /// would put there).
    static func sentence(state: AuditState, groups: [String: GroupSummary], names: [String], comparison: AttentionOverlapResult?) -> String {
        var parts: [String] = []
        if let area = state.config.maskArea {
            func percent(_ x: Double) -> String { format(100 * x, digits: 1) + "%" }
            let relying = names.filter { (groups[$0]?.maskAttentionCI95?.0 ?? 0) > 2 * area }
            let levels = names.map { "\(percent(groups[$0]?.maskAttentionMean ?? 0)) for \($0)" }.joined(separator: ", ")
            if relying.isEmpty {
                parts.append(
                    "The model does not appear to rely on the shortcut region: the share of attention inside it is \(levels), "
                        + "against \(percent(area)) for attention spread evenly over the image.")
            } else {
                let details = relying.map { name -> String in
                    let ci = groups[name]?.maskAttentionCI95 ?? (0, 0)
                    return "\(percent(groups[name]?.maskAttentionMean ?? 0)) of attention falls inside it for \(name) (95% CI \(percent(ci.0))-\(percent(ci.1)))"
                }
                parts.append(
                    "The model appears to rely on the shortcut region for \(relying.joined(separator: " and ")): "
                        + details.joined(separator: "; ")
                        + ", against \(percent(area)) for attention spread evenly over the image (all groups: \(levels)).")
            }
        }
        if let comparison { parts.append(comparison.summary) }
        return parts.joined(separator: " ")
    }

    // MARK: - Writing

    /// Writes the report (and the state it came from) into `folder`.
    public func write(to folder: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: folder.appendingPathComponent("overlays"), withIntermediateDirectories: true)
        try state.save(to: folder)
        try summaryJSON().write(to: folder.appendingPathComponent("summary.json"))
        try Data(samplesCSV().utf8).write(to: folder.appendingPathComponent("samples.csv"))
        var images: [(String, String, Data)] = []  // (file, caption, png)
        for (file, caption, image) in try figures() {
            let data = try PNG.encode(width: image.width, height: image.height, channels: 3, pixels: image.pixels)
            try data.write(to: folder.appendingPathComponent(file))
            images.append((file, caption, data))
        }
        for (file, caption, data) in overlayFiles() {
            try data.write(to: folder.appendingPathComponent(file))
            images.append((file, caption, data))
        }
        try Data(html(images: images).utf8).write(to: folder.appendingPathComponent("report.html"))
    }

    func summaryJSON() throws -> Data {
        var groupEntries: [String: Any] = [:]
        for (name, g) in groups {
            var entry: [String: Any] = ["n": g.n]
            if let m = g.maskAttentionMean { entry["mask_attention_mean"] = m }
            if let ci = g.maskAttentionCI95 { entry["mask_attention_ci95"] = [ci.0, ci.1] }
            if let s = g.shareAboveThreshold { entry["share_above_threshold"] = s }
            if let p = g.pointingGame { entry["pointing_game"] = p }
            if let i = g.iouMean { entry["iou_mean"] = i }
            if let a = g.accuracy { entry["accuracy"] = a }
            groupEntries[name] = entry
        }
        var root: [String: Any] = [
            "n": state.records.count, "layer": state.config.layer, "tensor": state.config.tensor, "method": state.config.method,
            "maps": state.config.maps, "target": state.config.target, "model": state.config.model,
            "preprocessing": state.config.preprocessing, "summary": summary, "groups": groupEntries,
            "threshold": state.config.threshold,
        ]
        if let comparison {
            root["overlap_score"] = comparison.overlapScore
            root["pairwise_overlap"] = Dictionary(uniqueKeysWithValues: comparison.pairwiseOverlap.map { ($0.key.description, $0.value) })
            root["divergence_pair"] = [comparison.divergencePair.first, comparison.divergencePair.second]
            root["significant_share"] = Double(comparison.significant.filter { $0 }.count) / Double(max(comparison.significant.count, 1))
        }
        if let mask = state.config.mask { root["mask"] = ["region": mask, "area": state.config.maskArea ?? 0] }
        if let detection {
            var entry = detection.jsonObject()
            entry["layer"] = state.config.embedLayer
            entry["tensor"] = state.config.embedTensor
            root["detection"] = entry
        }
        if let detectionNote { root["detection_note"] = detectionNote }
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }

    func samplesCSV() -> String {
        var lines = ["file,group,label,predicted_class,confidence,in_mask_fraction,pointing_hit,iou"]
        for r in state.records {
            let fields: [String] = [
                csvField(r.file), csvField(r.group), r.label.map(String.init) ?? "", String(r.predicted),
                String(r.confidence), r.scores.map { String($0.inMask) } ?? "",
                r.scores.map { $0.pointingHit ? "1" : "0" } ?? "", r.scores.map { String($0.iou) } ?? "",
            ]
            lines.append(fields.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func csvField(_ text: String) -> String {
        text.contains(",") || text.contains("\"") || text.contains("\n") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }

    /// Group means on one scale, the divergence map, and the three-panel comparison.
    func figures() throws -> [(String, String, RGBImage)] {
        let (h, w) = (state.config.height, state.config.width)
        let means = state.means()
        let names = means.keys.sorted()
        let top = max(means.values.flatMap { $0 }.max() ?? 0, 1e-12)
        func meanImage(_ name: String) throws -> RGBImage {
            try RGBImage(width: w, height: h, pixels: Colormap.jet.apply((means[name] ?? []).map { $0 / top }))
        }
        var result: [(String, String, RGBImage)] = []
        for name in names {
            let figure = try Panel.figure(
                [("\(name) mean", try meanImage(name))],
                colorbars: [Panel.Colorbar(after: 0, colormap: .jet, low: "0", high: format(Double(top), digits: 3))])
            result.append(("group_\(fileSafe(name))_mean.png", "Mean attention of \(name) (common scale)", figure))
        }
        guard let comparison else { return result }
        let pair = comparison.divergencePair
        let bound = max(comparison.divergenceRegions.map { abs($0) }.max() ?? 0, 1e-12)
        // Blue where the first group attends more, red where the second does; faded where not significant.
        var divergence = Colormap.redBlue.apply(comparison.divergenceRegions.map { ($0 / bound + 1) / 2 })
        for (p, significant) in comparison.significant.enumerated() where !significant {
            for c in 0..<3 { divergence[p * 3 + c] = UInt8((Int(divergence[p * 3 + c]) + 3 * 255) / 4) }
        }
        let divergenceImage = try RGBImage(width: w, height: h, pixels: divergence)
        let bar = Panel.Colorbar(after: 0, colormap: .redBlue, low: "-" + format(Double(bound), digits: 3), high: "+" + format(Double(bound), digits: 3))
        result.append(("divergence.png", "\(pair.first) minus \(pair.second); faded where not significant (permutation test, FDR 5%)",
            try Panel.figure([("\(pair.first) - \(pair.second)", divergenceImage)], colorbars: [bar])))
        var movedBar = bar
        movedBar.after = 2
        let figure = try Panel.figure(
            [("\(pair.first) mean", try meanImage(pair.first)), ("\(pair.second) mean", try meanImage(pair.second)),
             ("Divergence", divergenceImage)],
            colorbars: [Panel.Colorbar(after: 1, colormap: .jet, low: "0", high: format(Double(top), digits: 3)), movedBar])
        result.append(("comparison.png", "Group attention and divergence", figure))
        return result
    }

    /// The kept overlays, named by group, end and rank.
    func overlayFiles() -> [(String, String, Data)] {
        var files: [(String, String, Data)] = []
        for name in Set(state.records.map(\.group)).sorted() {
            let members = state.records.filter { $0.group == name }
            let scored = members.first?.scores != nil
            let most = scored
                ? members.sorted { ($0.scores?.inMask ?? 0, -$0.index) > ($1.scores?.inMask ?? 0, -$1.index) }
                : members.sorted { $0.index < $1.index }
            let least = members.sorted { ($0.scores?.inMask ?? 0, $0.index) < ($1.scores?.inMask ?? 0, $1.index) }
            let ends: [(String, [SampleRecord])] = scored ? [("most", most), ("least", least)] : [("example", most)]
            for (end, ranked) in ends {
                for (rank, record) in ranked.prefix(AuditState.extremes).enumerated() {
                    guard let data = state.overlays[record.index] else { continue }
                    let share = record.scores.map { ", \(format(100 * $0.inMask, digits: 1))% in region" } ?? ""
                    files.append(("overlays/\(end)_\(fileSafe(name))_\(rank + 1).png", "\(name), \(end) region-reliant #\(rank + 1): \(record.file)\(share)", data))
                }
            }
        }
        return files
    }

    func html(images: [(String, String, Data)]) -> String {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var rows = ""
        for name in groups.keys.sorted() {
            guard let g = groups[name] else { continue }
            func cell(_ value: Double?) -> String { value.map { format(100 * $0, digits: 1) + "%" } ?? "-" }
            let ci = g.maskAttentionCI95.map { "\(format(100 * $0.0, digits: 1))-\(format(100 * $0.1, digits: 1))%" } ?? "-"
            rows += "<tr><td>\(escape(name))</td><td>\(g.n)</td><td>\(cell(g.maskAttentionMean))</td><td>\(ci)</td><td>\(cell(g.shareAboveThreshold))</td><td>\(cell(g.pointingGame))</td><td>\(cell(g.iouMean))</td><td>\(cell(g.accuracy))</td></tr>\n"
        }
        var figures = ""
        for (file, caption, data) in images {
            figures += "<figure><img src=\"data:image/png;base64,\(data.base64EncodedString())\" alt=\"\(escape(file))\"><figcaption>\(escape(caption))</figcaption></figure>\n"
        }
        let c = state.config
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Shortcut audit</title>
            <style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}figure{display:inline-block;margin:8px;vertical-align:top;max-width:480px}img{max-width:100%;image-rendering:pixelated}figcaption{font-size:0.85em}</style>
            </head><body>
            <h1>Shortcut audit</h1>
            <p><strong>\(escape(summary))</strong></p>
            <p>\(state.records.count) images; model \(escape(c.model)); layer \(escape(c.layer)) (tensor \(escape(c.tensor))); method \(escape(c.method)); \(escape(c.maps)) maps; target \(escape(c.target)); preprocessing \(escape(c.preprocessing))\(c.mask.map { "; region \(escape($0)) covering \(format(100 * (c.maskArea ?? 0), digits: 1))% of the image" } ?? "").</p>
            <table><tr><th>group</th><th>n</th><th>in-region attention</th><th>95% CI</th><th>share above \(format(100 * c.threshold, digits: 0))%</th><th>pointing game</th><th>IoU</th><th>accuracy</th></tr>
            \(rows)</table>
            \(detectionSection(escape))
            \(figures)
            <p>Per-sample numbers are in samples.csv; the state/ folder lets shards be merged.</p>
            </body></html>

            """
    }
}

extension AuditReport {
    /// The embedding detectors' verdict and one row per method.
    func detectionSection(_ escape: (String) -> String) -> String {
        guard let d = detection else { return detectionNote.map { "<p><em>\(escape($0))</em></p>" } ?? "" }
        func cell(_ value: Double?) -> String { value.map { format($0, digits: 3) } ?? "-" }
        var rows = ""
        if let p = d.probe {
            rows += "<tr><td>probe</td><td>\(p.risk.rawValue)</td><td>linear F1 \(cell(p.value)), quadratic F1 \(cell(p.nonlinear.value)) against \(cell(p.threshold))</td></tr>"
        }
        if let s = d.statistical {
            let counts = s.comparisons.map { "\($0.groups.joined(separator: " vs ")): \($0.significant)" }.joined(separator: "; ")
            rows += "<tr><td>statistical</td><td>\(s.risk.rawValue)</td><td>significant dimensions of \(d.dim) (Mann-Whitney, FDR 5%): \(escape(counts))</td></tr>"
        }
        if let h = d.hbac {
            rows += "<tr><td>hbac</td><td>\(h.risk.rawValue)</td><td>\(h.clusters.count) clusters, \(h.highPurityClusters) over 80% pure; held-out linear accuracy \(cell(h.linearAccuracy))</td></tr>"
        }
        if let g = d.geometric {
            let top = g.pairs.max { $0.effectSize < $1.effectSize }
            rows += "<tr><td>geometric</td><td>\(g.risk.rawValue)</td><td>largest effect size \(cell(top?.effectSize)), mean subspace cosine \(cell(top?.meanCosine))</td></tr>"
        }
        return """
            <h2>Embedding-based detection</h2>
            <p>Pooled outputs of \(escape(state.config.embedLayer ?? "")) (tensor \(escape(state.config.embedTensor ?? "")), \(d.dim) dimensions), before any heatmap: <strong>\(escape(d.summary))</strong></p>
            <table><tr><th>method</th><th>risk</th><th>evidence</th></tr>\(rows)</table>
            """
    }
}

/// A group name as a file name component.
func fileSafe(_ name: String) -> String {
    String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
}

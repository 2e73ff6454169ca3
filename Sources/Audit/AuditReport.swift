import Detectors
import Foundation
import Imaging
import TensorCore

/// Turns an ``AuditState`` into the report folder: `summary.json`, `samples.csv`, group mean and
/// divergence maps, the three-panel comparison, the most and least region-reliant samples per
/// group (the image beside its overlay), the attention clusters, and a self-contained
/// `report.html`. Rendering depends on the state alone, so equal states give byte-identical reports.
public struct AuditReport {
    /// The state the report was rendered from.
    public let state: AuditState
    /// The groups' mean maps compared, when there are at least two groups.
    public let comparison: AttentionOverlapResult?
    /// Per group: accuracy, in-region statistics, the counterfactual test and faithfulness.
    public let groups: [String: GroupSummary]
    /// The largest accuracy difference between groups, when labels are known.
    public let accuracyGap: AccuracyGap?
    /// Spectral relevance analysis of the maps, when it ran.
    public let spray: SpRAyResult?
    /// How spectral relevance analysis ran on a subset, or why it did not run when asked to.
    public let sprayNote: String?
    /// The embedding detectors on the embed layer's pooled outputs, when they ran.
    public let detection: DetectionReport?
    /// Why the embedding detectors did not run, when they were asked to.
    public let detectionNote: String?
    /// The verdicts in plain words: attention, the counterfactual test, the comparison, accuracy,
    /// the attention clusters, then the embedding detectors.
    public let summary: String

    /// What the audit found for one group.
    public struct GroupSummary: Sendable {
        /// How many samples the group has.
        public let n: Int
        /// The mean in-region share of attention, when a region was given.
        public let maskAttentionMean: Double?
        /// Its 95% bootstrap interval.
        public let maskAttentionCI95: (Double, Double)?
        /// The share of samples whose in-region attention exceeds the threshold.
        public let shareAboveThreshold: Double?
        /// The share of samples whose map peaks inside the region (the pointing game).
        public let pointingGame: Double?
        /// The mean intersection over union of the map's top pixels and the region.
        public let iouMean: Double?
        /// Share of samples whose prediction equals their label, when labels are known.
        public let accuracy: Double?
        /// The accuracy's 95% bootstrap interval.
        public let accuracyCI95: (Double, Double)?
        /// In-region attention and accuracy per label within the group.
        public let byLabel: [Int: LabelSummary]
        /// What filling the region did to the group's predictions, when the test ran.
        public let counterfactual: CounterfactualSummary?
        /// How faithful the group's maps are, when the metrics ran.
        public let faithfulness: FaithfulnessSummary?
    }

    /// Computes every summary, statistic and figure from `state`.
    public init(state: AuditState) throws {
        self.state = state
        let names = Set(state.records.map(\.group)).sorted()
        guard !names.isEmpty else { throw AuditError.invalid("the audit has no samples") }
        var groups: [String: GroupSummary] = [:]
        for (index, name) in names.enumerated() {
            let members = state.records.filter { $0.group == name }
            groups[name] = Self.summarize(members, seed: 0xB007 &+ UInt64(index), threshold: state.config.threshold)
        }
        self.groups = groups
        accuracyGap = Self.gap(groups)
        comparison =
            names.count >= 2
            ? try AttentionOverlapResult.compare(
                means: state.means(), pooled: state.pooled, groups: state.records.map(\.group), grid: state.grid,
                options: ComparisonOptions())
            : nil
        (spray, sprayNote) = Self.cluster(state)
        (detection, detectionNote) = Self.detect(state, groupCount: names.count)
        summary = [
            AuditReport.sentence(state: state, groups: groups, names: names, comparison: comparison),
            Self.counterfactualSentence(state: state, groups: groups, names: names),
            accuracyGap.flatMap { gap in
                gap.flagged
                    ? "Accuracy differs between groups: \(percent(groups[gap.best]?.accuracy ?? 0)) for \(gap.best) against "
                        + "\(percent(groups[gap.worst]?.accuracy ?? 0)) for \(gap.worst) (their 95% intervals do not overlap)."
                    : nil
            },
            spray.map { Self.spraySentence($0) },
            detection.map { "Embedding detectors at \(state.config.embedLayer ?? state.config.layer): \($0.summary)" },
        ].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// One group's numbers; the bootstrap seeds derive from `seed` so every interval is reproducible.
    static func summarize(_ members: [SampleRecord], seed: UInt64, threshold: Double) -> GroupSummary {
        let inMask = members.compactMap { $0.scores?.inMask }
        let hasScores = inMask.count == members.count && !members.isEmpty
        let labelled = members.filter { $0.label != nil }
        let correct = labelled.map { $0.label == $0.predicted ? 1.0 : 0.0 }
        let accuracy = Estimate.of(correct, seed: seed &+ 0x100)
        var byLabel: [Int: LabelSummary] = [:]
        for label in Set(labelled.compactMap(\.label)).sorted() {
            let rows = members.filter { $0.label == label }
            byLabel[label] = LabelSummary(
                n: rows.count,
                maskAttention: hasScores ? Estimate.of(rows.compactMap { $0.scores?.inMask }, seed: seed &+ 0x200 &+ UInt64(truncatingIfNeeded: label & 0xFFFF)) : nil,
                accuracy: Double(rows.filter { $0.predicted == label }.count) / Double(rows.count))
        }
        return GroupSummary(
            n: members.count,
            maskAttentionMean: hasScores ? inMask.reduce(0, +) / Double(inMask.count) : nil,
            maskAttentionCI95: hasScores ? Statistics.bootstrapMeanInterval(inMask, seed: seed) : nil,
            shareAboveThreshold: hasScores ? Double(inMask.filter { $0 > threshold }.count) / Double(inMask.count) : nil,
            pointingGame: hasScores ? Double(members.filter { $0.scores?.pointingHit == true }.count) / Double(members.count) : nil,
            iouMean: hasScores ? members.compactMap { $0.scores?.iou }.reduce(0, +) / Double(members.count) : nil,
            accuracy: accuracy?.value, accuracyCI95: accuracy?.ci95, byLabel: byLabel,
            counterfactual: CounterfactualSummary.of(members, seed: seed &+ 0x300),
            faithfulness: FaithfulnessSummary.of(members, seed: seed &+ 0x400))
    }

    /// The most and least accurate groups; flagged when their intervals do not overlap.
    static func gap(_ groups: [String: GroupSummary]) -> AccuracyGap? {
        let rated = groups.filter { $0.value.accuracy != nil }.sorted { $0.key < $1.key }
        guard rated.count >= 2,
            let best = rated.max(by: { ($0.value.accuracy ?? 0) < ($1.value.accuracy ?? 0) }),
            let worst = rated.min(by: { ($0.value.accuracy ?? 0) < ($1.value.accuracy ?? 0) }),
            let high = best.value.accuracyCI95, let low = worst.value.accuracyCI95
        else { return nil }
        let gap = (best.value.accuracy ?? 0) - (worst.value.accuracy ?? 0)
        return AccuracyGap(best: best.key, worst: worst.key, gap: gap, flagged: gap > 0 && low.1 < high.0)
    }

    /// The most maps spectral relevance analysis clusters: its affinity holds the square of the
    /// count, and the eigensolver's time grows with its cube (2,000 maps: 32 MB, seconds).
    static let sprayLimit = 2000

    /// Spectral relevance analysis on the pooled maps: when no region was given, or when asked.
    /// Beyond ``sprayLimit`` samples it clusters every k-th (by position in the audit), k the
    /// smallest that fits, and the report names the samples it used.
    static func cluster(_ state: AuditState) -> (SpRAyResult?, String?) {
        guard state.config.spray ?? (state.config.mask == nil) else { return (nil, nil) }
        let grid = state.grid
        let step = (state.records.count + sprayLimit - 1) / sprayLimit
        let picked = Swift.stride(from: 0, to: state.records.count, by: max(step, 1)).map { $0 }
        do {
            let maps = step <= 1 ? state.pooled : picked.flatMap { state.pooled[$0 * grid.cells..<($0 + 1) * grid.cells] }
            let result = try SpRAy.fit(
                maps: maps, count: picked.count, height: grid.rows, width: grid.columns,
                groups: picked.map { state.records[$0].group }, labels: picked.map { state.records[$0].label })
            return (step <= 1 ? result : result.remapped(to: picked), step <= 1 ? nil : "spectral relevance analysis clustered every \(step)th of the \(state.records.count) maps (\(picked.count))")
        } catch {
            return (nil, "spectral relevance analysis did not run: \(error)")
        }
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

    /// The plain-language attention verdict: whether the model appears to rely on the region, and for whom.
    ///
    /// A group relies on the region when the lower end of its 95% interval of in-region
    /// attention exceeds twice the share of the image the region covers (what uniform attention
    /// would put there).
    static func sentence(state: AuditState, groups: [String: GroupSummary], names: [String], comparison: AttentionOverlapResult?) -> String {
        var parts: [String] = []
        if let area = state.config.maskArea {
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

    /// The groups whose predictions the region changes: the lower end of the 95% interval of the
    /// flip rate reaches 5% (at least one prediction in twenty, beyond sampling noise).
    static func counterfactualFlags(_ groups: [String: GroupSummary], names: [String]) -> [String] {
        names.filter { (groups[$0]?.counterfactual?.flipRate.ci95.0 ?? 0) >= 0.05 }
    }

    /// The counterfactual verdict: how many predictions filling the region changes, per group.
    static func counterfactualSentence(state: AuditState, groups: [String: GroupSummary], names: [String]) -> String? {
        guard let fill = state.config.counterfactual.flatMap(CounterfactualFill.init(rawValue:)),
            names.contains(where: { groups[$0]?.counterfactual != nil })
        else { return nil }
        let flagged = counterfactualFlags(groups, names: names)
        let how = "Filling the region with \(fill.phrase)"
        guard !flagged.isEmpty else {
            let levels = names.compactMap { name in groups[name]?.counterfactual.map { "\(percent($0.flipRate.value)) of \(name)'s" } }
            return "\(how) changes \(levels.joined(separator: " and ")) predictions: the predictions do not depend on what is in it."
        }
        let details = flagged.compactMap { name -> String? in
            guard let c = groups[name]?.counterfactual else { return nil }
            var text = "\(percent(c.flipRate.value)) of \(name)'s predictions (95% CI \(percent(c.flipRate.ci95.0))-\(percent(c.flipRate.ci95.1))"
            if c.byLabel.count > 1, let (label, worst) = c.byLabel.max(by: { ($0.value.flipRate.value, -$0.key) < ($1.value.flipRate.value, -$1.key) }) {
                text += "; \(percent(worst.flipRate.value)) of those labelled \(label)"
            }
            text += ") and lowers the predicted class's probability by \(format(c.confidenceDrop.value, digits: 2)) on average"
            if let before = c.accuracy, let after = c.accuracyCounterfactual {
                text += ", taking accuracy from \(percent(before.value)) to \(percent(after.value))"
            }
            return text
        }
        let others = names.filter { !flagged.contains($0) }.compactMap { name in
            groups[name]?.counterfactual.map { "\(percent($0.flipRate.value)) for \(name)" }
        }
        return "\(how) changes \(details.joined(separator: "; it changes "))"
            + (others.isEmpty ? "" : " (\(others.joined(separator: ", ")))")
            + ": the model uses what is in the region."
    }

    /// The attention clusters in a sentence.
    static func spraySentence(_ result: SpRAyResult) -> String {
        let start = "Spectral relevance analysis finds \(result.clusterCount) clusters of attention patterns"
        let candidates = result.clusters.filter(\.candidate)
        guard !candidates.isEmpty else { return start + "; none is small, focused and made of one group." }
        let described = candidates.map { c in
            "cluster \(c.id) (\(c.size) images, \(percent(c.groupPurity ?? 0)) \(c.dominantGroup ?? "")"
                + (c.labelPurity.map { ", \(percent($0)) labelled \(c.dominantLabel ?? 0)" } ?? "") + ")"
        }
        return start + "; " + described.joined(separator: " and ")
            + (candidates.count == 1 ? " is" : " are") + " small, focused and made of one group: a candidate shortcut to look at."
    }

    // MARK: - Writing

    /// Writes the report (and the state it came from) into `folder`.
    public func write(to folder: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: folder.appendingPathComponent("overlays"), withIntermediateDirectories: true)
        try state.save(to: folder)
        try summaryJSON().write(to: folder.appendingPathComponent("summary.json"))
        try Data(samplesCSV().utf8).write(to: folder.appendingPathComponent("samples.csv"))
        var images: [ReportImage] = []
        for figure in try figures() {
            let data = try PNG.encode(width: figure.image.width, height: figure.image.height, channels: 3, pixels: figure.image.pixels)
            try data.write(to: folder.appendingPathComponent(figure.file))
            images.append(ReportImage(file: figure.file, caption: figure.caption, data: data, width: figure.image.width, height: figure.image.height))
        }
        for overlay in overlayFiles() {
            try overlay.data.write(to: folder.appendingPathComponent(overlay.file))
            images.append(overlay)
        }
        try Data(html(images: images).utf8).write(to: folder.appendingPathComponent("report.html"))
    }
}

/// One picture of the report: where it is written, its caption, its PNG bytes and size.
struct ReportImage {
    let file: String
    let caption: String
    let data: Data
    let width: Int
    let height: Int
}

/// A share as a percentage with one decimal.
func percent(_ x: Double) -> String { format(100 * x, digits: 1) + "%" }

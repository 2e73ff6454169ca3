import Detectors
import Foundation
import Imaging
import TensorCore

/// Turns an audit's state into the report folder: `summary.json`, `samples.csv`, group mean and
/// divergence maps, the three-panel comparison, the most and least region-reliant samples per
/// group (the image beside its overlay), the attention clusters, and a self-contained
/// `report.html`. Rendering depends on the state alone, so equal states give byte-identical reports.
///
/// The state is read in one pass (`AuditDigest`): memory does not grow with the number of samples.
public struct AuditReport {
    let digest: AuditDigest
    /// The audit's settings.
    public var config: AuditConfig { digest.config }
    /// The groups' mean maps compared, when there are at least two groups.
    public let comparison: AttentionOverlapResult?
    /// Per group: accuracy, in-region statistics, the counterfactual test and faithfulness.
    public let groups: [String: GroupSummary]
    /// The largest accuracy difference between groups, when labels are known.
    public let accuracyGap: AccuracyGap?
    /// Spectral relevance analysis of the maps, when it ran (members are positions in the digest's subsample).
    public let spray: SpRAyResult?
    /// How spectral relevance analysis ran on a subset, or why it did not run when asked to.
    public let sprayNote: String?
    /// The embedding detectors on the embed layer's pooled outputs, when they ran.
    public let detection: DetectionReport?
    /// Why the embedding detectors did not run, when they were asked to, or on how many samples they ran.
    public let detectionNote: String?
    /// The verdicts in plain words: attention, the counterfactual test, the comparison, accuracy,
    /// the attention clusters, then the embedding detectors, then the rows that were skipped.
    public let summary: String
    /// Samples audited.
    public var count: Int { digest.index.records }
    /// Rows of groups.csv that were not audited (images that could not be used, repeated rows).
    public var skipped: Int { digest.index.issues }

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

    /// Renders the report of the state already written into `folder` (by an audit or a merge)
    /// and writes it there, beside the state.
    @discardableResult
    public static func write(into folder: OutputFolder) throws -> AuditReport {
        let state = try AuditStateReader(folder.staging)
        let csv = try folder.stream("samples.csv")
        let digest = try AuditDigest(state, csv: csv)
        try folder.finish(csv)
        let report = try AuditReport(digest)
        try report.write(into: folder)
        return report
    }

    init(_ digest: AuditDigest) throws {
        self.digest = digest
        let names = digest.names
        guard !names.isEmpty else {
            throw AuditError.invalid(
                digest.index.issues > 0
                    ? "no image could be audited: \(digest.skippedExamples.first.map { "\($0.file): \($0.message)" } ?? "every row was skipped")"
                    : "the audit has no samples")
        }
        let groups = digest.groups
        self.groups = groups
        let accuracyGap = Self.gap(groups)
        self.accuracyGap = accuracyGap
        let sample = digest.subsample
        comparison =
            names.count >= 2
            ? try AttentionOverlapResult.compare(
                means: digest.means, counts: digest.counts, pooled: sample.pooled, groups: sample.groups, grid: digest.grid,
                options: ComparisonOptions())
            : nil
        let (spray, sprayNote) = Self.cluster(digest)
        (self.spray, self.sprayNote) = (spray, sprayNote)
        let (detection, detectionNote) = Self.detect(digest)
        (self.detection, self.detectionNote) = (detection, detectionNote)
        let config = digest.config
        summary = [
            AuditReport.sentence(config: config, groups: groups, names: names, comparison: self.comparison),
            Self.counterfactualSentence(config: config, groups: groups, names: names),
            accuracyGap.flatMap { gap in
                gap.flagged
                    ? "Accuracy differs between groups: \(percent(groups[gap.best]?.accuracy ?? 0)) for \(gap.best) against "
                        + "\(percent(groups[gap.worst]?.accuracy ?? 0)) for \(gap.worst) (their 95% intervals do not overlap)."
                    : nil
            },
            spray.map { Self.spraySentence($0) },
            detection.map { "Embedding detectors at \(config.embedLayer ?? config.layer): \($0.summary)" },
            Self.skippedSentence(digest),
        ].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// The rows that were not audited, in a sentence.
    static func skippedSentence(_ digest: AuditDigest) -> String? {
        let unusable = digest.skipped[.unusable] ?? 0
        let repeated = digest.skipped[.duplicate] ?? 0
        guard unusable + repeated > 0 else { return nil }
        var parts: [String] = []
        if unusable > 0 { parts.append("\(unusable) image(s) could not be used and were left out") }
        if repeated > 0 { parts.append("\(repeated) repeated row(s) of groups.csv were counted once") }
        return parts.joined(separator: "; ") + " (samples.csv lists them with the reason)."
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

    /// Spectral relevance analysis on the pooled maps: when no region was given, or when asked.
    /// Beyond ``AuditDigest/sampleLimit`` samples it clusters every k-th (by position in the
    /// audit), and the report names the samples it used.
    static func cluster(_ digest: AuditDigest) -> (SpRAyResult?, String?) {
        let config = digest.config
        guard config.spray ?? (config.mask == nil) else { return (nil, nil) }
        let sample = digest.subsample
        do {
            let result = try SpRAy.fit(
                maps: sample.pooled, count: sample.count, height: digest.grid.rows, width: digest.grid.columns, groups: sample.groups,
                labels: sample.labels)
            return (result, sample.step <= 1 ? nil : "spectral relevance analysis clustered every \(sample.step)th of the \(digest.index.records) maps (\(sample.count))")
        } catch {
            return (nil, "spectral relevance analysis did not run: \(error)")
        }
    }

    /// The seed's first step: do the embeddings encode the group? The detectors read the groups
    /// alone (the seed's `fit(embeddings, group_labels)`): with the task labels, HBAC would ask
    /// whether the layer separates the classes, which a working classifier's layer always does.
    /// Beyond ``AuditDigest/sampleLimit`` samples they read every k-th.
    static func detect(_ digest: AuditDigest) -> (DetectionReport?, String?) {
        guard digest.config.embedTensor != nil else { return (nil, nil) }
        guard digest.names.count >= 2 else { return (nil, "the embedding detectors need at least two groups") }
        let sample = digest.subsample
        do {
            let embeddings = try Tensor(shape: [sample.count, digest.index.embeddingWidth], scalars: sample.embeddings)
            let note = sample.step <= 1 ? nil : "the embedding detectors read every \(sample.step)th of the \(digest.index.records) samples (\(sample.count))"
            return (try ShortcutDetector().fit(embeddings: embeddings, groups: sample.groups), note)
        } catch {
            return (nil, "the embedding detectors did not run: \(error)")
        }
    }

    /// The plain-language attention verdict: whether the model appears to rely on the region, and for whom.
    ///
    /// A group relies on the region when the lower end of its 95% interval of in-region
    /// attention exceeds twice the share of the image the region covers (what uniform attention
    /// would put there).
    static func sentence(config: AuditConfig, groups: [String: GroupSummary], names: [String], comparison: AttentionOverlapResult?) -> String {
        var parts: [String] = []
        if let area = config.maskArea {
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
    static func counterfactualSentence(config: AuditConfig, groups: [String: GroupSummary], names: [String]) -> String? {
        guard let fill = config.counterfactual.flatMap(CounterfactualFill.init(rawValue:)),
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

    /// Writes the report's files (all but `samples.csv`, written while reading the state) into `folder`.
    func write(into folder: OutputFolder) throws {
        try folder.createFolder("overlays")
        try folder.write(summaryJSON(), to: "summary.json")
        var images: [ReportImage] = []
        for figure in try figures() {
            let data = try PNG.encode(width: figure.image.width, height: figure.image.height, channels: 3, pixels: figure.image.pixels)
            try folder.write(data, to: figure.file)
            images.append(ReportImage(file: figure.file, caption: figure.caption, data: data, width: figure.image.width, height: figure.image.height))
        }
        for overlay in overlayFiles() {
            try folder.write(overlay.data, to: overlay.file)
            images.append(overlay)
        }
        try folder.write(Data(html(images: images).utf8), to: "report.html")
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

import Foundation
import Imaging
import TensorCore

/// What a report needs from an audit's state, gathered in one pass over its samples and bounded
/// whatever their number: per-group statistics (streamed, with Poisson-bootstrap intervals), the
/// group means (from the exact sums), the samples the report shows, and at most
/// ``AuditDigest/sampleLimit`` pooled maps and embeddings (every k-th sample) for the
/// permutation test, spectral relevance analysis and the embedding detectors. The same pass
/// writes `samples.csv`.
struct AuditDigest {
    /// The most samples the permutation test, spectral relevance analysis and the embedding
    /// detectors read. Their cost grows with the count (the permutation test as 1,000 passes
    /// over the maps, the clustering's affinity and Laplacian with its square and its
    /// eigensolver with its cube; 1,000 maps: about 30 MB and a second), so beyond it they read
    /// every k-th sample, k the smallest that fits, the same samples in a single run and in
    /// merged shards. At 2,000 the clustering alone took 130 MB more than at 1,000 (heaptrack),
    /// more than the rest of an audit of any size: the bound is what keeps the resident set of a
    /// 100,000-image audit within 1.2x of a 1,000-image one (tools/audit_memory.py).
    static let sampleLimit = 1000

    /// The samples the permutation test, the clustering and the detectors read.
    struct Subsample {
        /// Every `step`-th audited sample, by position (0 first).
        var step = 1
        var positions: [Int] = []
        var groups: [String] = []
        var labels: [Int?] = []
        var files: [String] = []
        /// Pooled maps, one row of `grid.cells` values per sample.
        var pooled: [Float] = []
        /// Embeddings, one row of `embeddingWidth` values per sample.
        var embeddings: [Float] = []
        var count: Int { positions.count }
    }

    let config: AuditConfig
    let grid: PoolingGrid
    let index: StateIndex
    /// Audited samples per group.
    let counts: [String: Int]
    let means: [String: [Float]]
    var groups: [String: AuditReport.GroupSummary] = [:]
    var subsample = Subsample()
    /// How many images of each size (`WxH`) went in, and how many were used as they are.
    var imageSizes: [String: Int] = [:]
    var imagesAsIs = 0
    /// Rows not audited, by kind, and the first few of them.
    var skipped: [SampleIssue.Kind: Int] = [:]
    var skippedExamples: [SampleIssue] = []
    /// The records of the samples the report shows (see ``ExtremeSamples``), by index.
    var shown: [Int: SampleRecord] = [:]
    var extremes = ExtremeSamples()
    var overlays: [Int: Data] = [:]

    var names: [String] { counts.keys.sorted() }

    /// Reads every sample of `state` once, writing `samples.csv` into `csv` on the way.
    init(_ state: AuditStateReader, csv: FileSink) throws {
        config = state.config
        grid = state.grid
        index = state.index
        counts = state.index.groups
        means = state.sums.reduce(into: [:]) { result, entry in
            let n = Double(max(state.index.groups[entry.key] ?? 1, 1))
            result[entry.key] = entry.value.map { Float(Double($0) / AuditStateLayout.fixedPointScale / n) }
        }
        let names = counts.keys.sorted()
        // Seeds by group position, as before streaming: every interval repeats exactly.
        var accumulators = Dictionary(
            uniqueKeysWithValues: names.enumerated().map { ($1, GroupAccumulator(seed: 0xB007 &+ UInt64($0), threshold: config.threshold)) })
        subsample.step = max(1, (index.records + Self.sampleLimit - 1) / Self.sampleLimit)
        let transform = config.transform?.preprocessing

        try csv.append(Data((SamplesCSV.header + "\n").utf8))
        let records = try state.records()
        let issues = try state.issues()
        var nextRecord = try records.next()
        var nextIssue = try issues.next()
        var position = 0
        while nextRecord != nil || nextIssue != nil {
            if let issue = nextIssue, nextRecord.map({ issue.index < $0.record.index }) ?? true {
                skipped[issue.kind, default: 0] += 1
                if skippedExamples.count < 3 { skippedExamples.append(issue) }
                try csv.append(Data((SamplesCSV.row(issue) + "\n").utf8))
                nextIssue = try issues.next()
                continue
            }
            guard let (record, pooled, embedding) = nextRecord else { break }
            if let issue = nextIssue, issue.index == record.index {
                throw AuditError.invalid("row \(record.index + 2) (\(record.file)) is both audited and skipped: the state is damaged")
            }
            accumulators[record.group]?.add(record)
            if position % subsample.step == 0 {
                subsample.positions.append(position)
                subsample.groups.append(record.group)
                subsample.labels.append(record.label)
                subsample.files.append(record.file)
                subsample.pooled += pooled
                subsample.embeddings += embedding
            }
            if let size = record.imageSize, size.count == 2 {
                imageSizes["\(size[0])x\(size[1])", default: 0] += 1
                if transform?.usesAsIs(width: size[0], height: size[1]) == true { imagesAsIs += 1 }
            }
            if extremes.add(record) { shown[record.index] = record }
            let kept = extremes.kept
            shown = shown.filter { kept.contains($0.key) }
            try csv.append(Data((SamplesCSV.row(record) + "\n").utf8))
            position += 1
            nextRecord = try records.next()
        }
        try records.finish()
        groups = accumulators.mapValues(\.summary)
        overlays = try state.overlays(extremes.kept)
    }

    /// Per group and end (`most`, `least`, or `example` without a region), the samples shown, best first.
    var shownByGroup: [(group: String, end: String, records: [SampleRecord])] {
        names.flatMap { name -> [(group: String, end: String, records: [SampleRecord])] in
            let most = (extremes.most[name] ?? []).compactMap { shown[$0.index] }
            let least = (extremes.least[name] ?? []).compactMap { shown[$0.index] }
            return least.isEmpty && most.first?.scores == nil
                ? [(name, "example", most)] : [(name, "most", most), (name, "least", least)]
        }
    }
}

/// The rows of `samples.csv`: one per row of groups.csv, audited or not.
enum SamplesCSV {
    static let header =
        "file,group,label,predicted_class,confidence,in_mask_fraction,pointing_hit,iou,image_width,image_height,"
        + "counterfactual_predicted,counterfactual_confidence,cam_mult_confidence_change,road_combined,issue"

    static func row(_ r: SampleRecord) -> String {
        let fields: [String] = [
            field(r.file), field(r.group), r.label.map(String.init) ?? "", String(r.predicted),
            String(r.confidence), r.scores.map { String($0.inMask) } ?? "",
            r.scores.map { $0.pointingHit ? "1" : "0" } ?? "", r.scores.map { String($0.iou) } ?? "",
            r.imageSize.map { String($0[0]) } ?? "", r.imageSize.map { String($0[1]) } ?? "",
            r.counterfactual.map { String($0.predicted) } ?? "", r.counterfactual.map { String($0.confidence) } ?? "",
            r.faithfulness.map { String($0.camMultConfidenceChange) } ?? "", r.faithfulness.map { String($0.roadCombined) } ?? "", "",
        ]
        return fields.joined(separator: ",")
    }

    static func row(_ issue: SampleIssue) -> String {
        [field(issue.file), field(issue.group), issue.label.map(String.init) ?? ""].joined(separator: ",")
            + String(repeating: ",", count: 11) + "," + field("\(issue.kind.rawValue): \(issue.message)")
    }

    static func field(_ text: String) -> String {
        text.contains(",") || text.contains("\"") || text.contains("\n") || text.contains("\r")
            ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }
}

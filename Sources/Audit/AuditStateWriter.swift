import Foundation
import Imaging
import TensorCore

/// Where an audit's state lives inside its report folder, file by file.
///
/// Per-sample data is on disk, in audit order (the order of groups.csv): `records.jsonl` (one
/// ``SampleRecord`` per line), `issues.jsonl` (one ``SampleIssue`` per line), `pooled.f32` (each
/// record's map pooled to at most 32x32 cells) and `embeddings.f32` (each record's embedding,
/// when the detectors run). What stays small whatever the number of samples is in JSON beside
/// them: `config.json`, `index.json` (the counts every file is checked against), `sums.json`
/// (per group, the exact fixed-point sums of the full-resolution maps) and `overlays/` (the
/// pictures of the few samples a report shows).
///
/// Sums are kept in 40.24 fixed point, so adding them is associative: a report merged from shards
/// equals, byte for byte, the one a single run writes.
public enum AuditStateLayout {
    static let folder = "state"
    static let config = "state/config.json"
    static let index = "state/index.json"
    static let sums = "state/sums.json"
    static let records = "state/records.jsonl"
    static let issues = "state/issues.jsonl"
    static let pooled = "state/pooled.f32"
    static let embeddings = "state/embeddings.f32"
    static let overlays = "state/overlays"
    /// The scale of the fixed-point sums: 24 fractional bits, so adding them is associative.
    public static let fixedPointScale = Double(1 << 24)

    /// The grid the per-sample maps are pooled to.
    static func grid(_ config: AuditConfig) -> PoolingGrid { PoolingGrid(height: config.height, width: config.width, maxCells: 32) }

    static var lineEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    static var documentEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

/// Writes an audit's state into a results folder as samples arrive, keeping in memory only what
/// does not grow with their number: the per-group sums and the overlays of the current extremes.
///
/// Samples must arrive in audit order (each index larger than the last); records and issues
/// each in that order.
final class AuditStateWriter {
    let config: AuditConfig
    let grid: PoolingGrid
    private let folder: OutputFolder
    private let records: FileSink
    private let issues: FileSink
    private let pooled: FileSink
    private let embeddings: FileSink?
    private let encoder = AuditStateLayout.lineEncoder
    private var sums: [String: [Int64]] = [:]
    private var counts: [String: Int] = [:]
    private var recordCount = 0
    private var issueCount = 0
    private var embeddingWidth: Int?
    private var lastRecord = -1
    private var lastIssue = -1
    private var extremes = ExtremeSamples()
    private var overlays: [Int: Data] = [:]

    init(folder: OutputFolder, config: AuditConfig) throws {
        self.folder = folder
        self.config = config
        grid = AuditStateLayout.grid(config)
        try folder.createFolder(AuditStateLayout.overlays)
        records = try folder.stream(AuditStateLayout.records)
        issues = try folder.stream(AuditStateLayout.issues)
        pooled = try folder.stream(AuditStateLayout.pooled)
        embeddings = config.embedTensor == nil ? nil : try folder.stream(AuditStateLayout.embeddings)
    }

    /// Adds one audited sample: its record, its full-resolution heatmap (pooled for the state,
    /// summed into its group's mean), its embedding, and its overlay, made only while it is one
    /// of the samples the report shows.
    func add(_ record: SampleRecord, heatmap: ArraySlice<Float>, embedding: ArraySlice<Float>, overlay: () throws -> Data) throws {
        guard heatmap.count == config.height * config.width else {
            throw AuditError.invalid("the heatmap of \(record.file) has \(heatmap.count) values for a \(config.height)x\(config.width) input")
        }
        var sum = sums[record.group] ?? [Int64](repeating: 0, count: heatmap.count)
        for (i, value) in zip(sum.indices, heatmap) {
            // Maps are non-negative; a value that is not finite, or too large to sum exactly, is the model's fault.
            guard value.isFinite, value >= 0, let fixed = Int64(exactly: (Double(value) * AuditStateLayout.fixedPointScale).rounded()) else {
                throw AuditError.invalid("the heatmap of \(record.file) holds \(value): the model's output or gradients are not finite")
            }
            let (added, overflow) = sum[i].addingReportingOverflow(fixed)
            guard !overflow else { throw AuditError.invalid("the heatmaps of group '\(record.group)' are too large to sum exactly") }
            sum[i] = added
        }
        sums[record.group] = sum
        try write(record, pooled: grid.pool(Array(heatmap)), embedding: embedding)
        if extremes.add(record) { overlays[record.index] = try overlay() }
        let kept = extremes.kept
        overlays = overlays.filter { kept.contains($0.key) }
    }

    /// Adds a record with its pooled map and embedding, leaving the sums alone (a merge adds
    /// the shards' sums with ``addSums(_:group:)``); `overlay` supplies the sample's overlay
    /// while it is one of the extremes.
    func add(_ record: SampleRecord, pooled row: [Float], embedding: ArraySlice<Float>, overlay: () throws -> Data) throws {
        try write(record, pooled: row, embedding: embedding)
        if extremes.add(record) { overlays[record.index] = try overlay() }
        let kept = extremes.kept
        overlays = overlays.filter { kept.contains($0.key) }
    }

    /// Adds a shard's sums of one group.
    func addSums(_ values: [Int64], group: String) throws {
        var sum = sums[group] ?? [Int64](repeating: 0, count: values.count)
        guard sum.count == values.count else { throw AuditError.invalid("the shards' maps of group '\(group)' differ in size") }
        for i in sum.indices {
            let (added, overflow) = sum[i].addingReportingOverflow(values[i])
            guard !overflow else { throw AuditError.invalid("the shards' sums of group '\(group)' overflow: their states are damaged") }
            sum[i] = added
        }
        sums[group] = sum
    }

    /// Adds a row that was not audited.
    func add(_ issue: SampleIssue) throws {
        guard issue.index > lastIssue else { throw AuditError.invalid("sample \(issue.file) (row \(issue.index + 2)) came out of order") }
        lastIssue = issue.index
        try issues.append(encoder.encode(issue))
        try issues.append([UInt8(ascii: "\n")])
        issueCount += 1
    }

    private func write(_ record: SampleRecord, pooled row: [Float], embedding: ArraySlice<Float>) throws {
        guard record.index > lastRecord else { throw AuditError.invalid("sample \(record.file) (row \(record.index + 2)) came out of order") }
        lastRecord = record.index
        if let embeddings {
            guard embeddingWidth.map({ $0 == embedding.count }) ?? true else {
                throw AuditError.invalid("the embedding of \(record.file) has \(embedding.count) values, the earlier ones \(embeddingWidth ?? 0)")
            }
            embeddingWidth = embedding.count
            try embedding.withUnsafeBytes { try embeddings.append(raw: $0) }
        }
        try records.append(encoder.encode(record))
        try records.append([UInt8(ascii: "\n")])
        try pooled.append(floats: row)
        counts[record.group, default: 0] += 1
        recordCount += 1
    }

    /// Closes the per-sample files and writes the rest of the state; returns its index.
    @discardableResult
    func finish() throws -> StateIndex {
        for sink in [records, issues, pooled] + (embeddings.map { [$0] } ?? []) { try folder.finish(sink) }
        let index = StateIndex(records: recordCount, issues: issueCount, embeddingWidth: embeddingWidth ?? 0, groups: counts)
        let documents = AuditStateLayout.documentEncoder
        try folder.write(documents.encode(config), to: AuditStateLayout.config)
        try folder.write(documents.encode(index), to: AuditStateLayout.index)
        try folder.write(AuditStateLayout.lineEncoder.encode(sums), to: AuditStateLayout.sums)
        for (sample, data) in overlays.sorted(by: { $0.key < $1.key }) {
            try folder.write(data, to: "\(AuditStateLayout.overlays)/\(sample).png")
        }
        return index
    }
}

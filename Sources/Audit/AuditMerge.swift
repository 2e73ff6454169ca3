import Foundation
import TensorCore

extension AuditReport {
    /// Combines the states of shard reports into `output` (the state only; render the report with
    /// ``write(into:)``), refusing anything inconsistent.
    ///
    /// Each shard must be a complete report: its manifest matches every file (sizes and SHA-256,
    /// nothing unlisted), its state passes the state reader's checks (settings, counts,
    /// exact file sizes, group sums against the pooled maps, the overlays it needs, all valid
    /// PNGs), and every shard comes from an audit with the same settings. A sample in two shards
    /// is refused. Records stream through in audit order, so memory does not grow with their number.
    /// - Returns: The merged settings and how many samples and skipped rows the shards hold.
    @discardableResult
    public static func merge(_ shards: [URL], into output: OutputFolder) throws -> (config: AuditConfig, records: Int, issues: Int) {
        guard !shards.isEmpty else { throw AuditError.invalid("nothing to merge") }
        var readers: [AuditStateReader] = []
        for shard in shards {
            // Its sentences name the folder or file and what is wrong with it.
            do { _ = try ManifestHeader.verify(shard, kind: AuditRunConfiguration.kind) } catch let error as OutputError {
                throw AuditError.invalid(error.description)
            }
            let reader = try AuditStateReader(shard)
            let manifest = try? JSONDecoder().decode(
                Manifest<AuditRunConfiguration>.self, from: FileIO.data(of: shard.appendingPathComponent(ManifestHeader.fileName).path))
            guard manifest?.configuration.audit == reader.config else {
                throw AuditError.invalid("\(shard.path): the manifest's configuration differs from state/config.json")
            }
            if let first = readers.first, first.config != reader.config {
                throw AuditError.invalid(
                    "\(shard.path) and \(first.folder.path) come from audits with different settings and cannot be merged")
            }
            readers.append(reader)
        }
        let config = readers[0].config
        let writer = try AuditStateWriter(folder: output, config: config)
        for reader in readers {
            for (group, values) in reader.sums.sorted(by: { $0.key < $1.key }) { try writer.addSums(values, group: group) }
        }

        // Records: the smallest next index across the shards, each shard's stream checked as it goes.
        let streams = try readers.map { try $0.records() }
        var heads = try streams.map { try $0.next() }
        var shardExtremes = [ExtremeSamples](repeating: ExtremeSamples(), count: readers.count)
        var records = 0
        while let (shard, head) = heads.enumerated().compactMap({ entry in entry.element.map { (entry.offset, $0) } })
            .min(by: { $0.1.record.index < $1.1.record.index })
        {
            if let other = heads.indices.first(where: { $0 != shard && heads[$0]?.record.index == head.record.index }) {
                throw AuditError.invalid(
                    "sample \(head.record.file) (row \(head.record.index + 2)) is in both \(shards[shard].path) and \(shards[other].path)")
            }
            shardExtremes[shard].add(head.record)
            let folder = readers[shard].folder
            try writer.add(head.record, pooled: head.pooled, embedding: head.embedding[...]) {
                let url = folder.appendingPathComponent("\(AuditStateLayout.overlays)/\(head.record.index).png")
                do { return try FileIO.data(of: url.path) } catch let error as FileError {
                    throw AuditError.invalid("cannot read \(url.path) (\(error.reason)): the report needs the overlay of \(head.record.file)")
                }
            }
            records += 1
            heads[shard] = try streams[shard].next()
        }
        for (reader, (stream, extremes)) in zip(readers, zip(streams, shardExtremes)) {
            try stream.finish()
            // Each shard holds exactly the overlays its own report shows, every one a valid picture.
            _ = try reader.overlays(extremes.kept)
        }

        let issueStreams = try readers.map { try $0.issues() }
        var issueHeads = try issueStreams.map { try $0.next() }
        var issues = 0
        while let (shard, head) = issueHeads.enumerated().compactMap({ entry in entry.element.map { (entry.offset, $0) } })
            .min(by: { $0.1.index < $1.1.index })
        {
            if issueHeads.indices.contains(where: { $0 != shard && issueHeads[$0]?.index == head.index }) {
                throw AuditError.invalid("row \(head.index + 2) (\(head.file)) is skipped in two shards")
            }
            try writer.add(head)
            issues += 1
            issueHeads[shard] = try issueStreams[shard].next()
        }
        try writer.finish()
        return (config, records, issues)
    }
}

/// What an audit report's manifest records as its configuration: the audit's settings and, for a
/// shard, which one (`K/N`).
public struct AuditRunConfiguration: Codable, Sendable, Equatable {
    /// The manifest kind of audit reports.
    public static let kind = "audit"
    /// The audit's settings.
    public var audit: AuditConfig
    /// `K/N` for one shard of a sharded audit, `nil` for a whole one.
    public var shard: String?

    /// The configuration of an audit or of shard `shard` of it.
    public init(_ audit: AuditConfig, shard: String?) {
        self.audit = audit
        self.shard = shard
    }
}

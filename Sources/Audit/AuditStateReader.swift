import Foundation
import Imaging
import TensorCore

/// An audit's saved state, read back and checked: the settings, the counts and sums up front, the
/// per-sample files as streams (``RecordStream``, ``IssueStream``) that check every row as it
/// passes. Nothing here holds more than one sample at a time.
///
/// What is refused, each with a sentence naming the file: settings an audit could not have
/// written (``AuditConfig``'s sizes and thresholds), counts that disagree between `index.json`,
/// `sums.json` and the per-sample files, files of the wrong exact size, rows out of order or
/// outside the audit, values that are not finite, and group sums that do not add up to the
/// pooled maps they summarize.
struct AuditStateReader {
    /// The report folder (or the staging folder of one being written).
    let folder: URL
    let config: AuditConfig
    let index: StateIndex
    let sums: [String: [Int64]]
    let grid: PoolingGrid

    /// Reads the small state files of the report at `folder`.
    init(_ folder: URL) throws {
        self.folder = folder
        let name = folder.path
        func read(_ path: String) throws -> Data {
            do { return try FileIO.data(of: folder.appendingPathComponent(path).path) } catch let error as FileError {
                throw AuditError.invalid("\(name) is not an audit report (\(path): \(error.reason))")
            }
        }
        func decode<T: Decodable>(_ type: T.Type, _ path: String) throws -> T {
            do { return try JSONDecoder().decode(type, from: read(path)) } catch let error as DecodingError {
                throw AuditError.invalid("\(name)/\(path) is not a valid audit state (\(AuditError.describe(error)))")
            }
        }
        config = try decode(AuditConfig.self, AuditStateLayout.config)
        try config.validate("\(name)/\(AuditStateLayout.config)")
        index = try decode(StateIndex.self, AuditStateLayout.index)
        sums = try decode([String: [Int64]].self, AuditStateLayout.sums)
        grid = AuditStateLayout.grid(config)

        let where_ = "\(name)/\(AuditStateLayout.index)"
        guard index.records >= 0, index.issues >= 0, index.embeddingWidth >= 0, index.records <= config.total,
            index.issues <= config.total - index.records
        else {
            throw AuditError.invalid("\(where_) counts \(index.records) records and \(index.issues) issues for an audit of \(config.total) images")
        }
        guard index.groups.values.allSatisfy({ $0 > 0 }), index.groups.values.reduce(0, { $0 &+ $1 }) == index.records else {
            throw AuditError.invalid("\(where_): the groups' counts do not add up to its \(index.records) records")
        }
        guard (config.embedTensor == nil) == (index.embeddingWidth == 0) || index.records == 0 else {
            throw AuditError.invalid("\(where_): an embedding width of \(index.embeddingWidth) does not fit the settings")
        }
        guard Set(sums.keys) == Set(index.groups.keys) else {
            throw AuditError.invalid(
                "\(name)/\(AuditStateLayout.sums) holds the groups \(sums.keys.sorted()) but the records hold \(index.groups.keys.sorted())")
        }
        let pixels = config.height * config.width
        if let (group, values) = sums.first(where: { $0.value.count != pixels || $0.value.contains { $0 < 0 } }) {
            throw AuditError.invalid(
                "\(name)/\(AuditStateLayout.sums): group '\(group)' holds \(values.count) values, some negative or not \(pixels) for a \(config.height)x\(config.width) input")
        }
    }

    /// The per-sample records with their pooled maps and embeddings, in audit order.
    func records() throws -> RecordStream { try RecordStream(self) }

    /// The rows that were not audited, in audit order.
    func issues() throws -> IssueStream { try IssueStream(self) }

    /// The overlay PNG of each sample in `kept`; every one must be there, and nothing else.
    func overlays(_ kept: Set<Int>) throws -> [Int: Data] {
        let folderURL = folder.appendingPathComponent(AuditStateLayout.overlays)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folderURL.path)) ?? []
        var result: [Int: Data] = [:]
        for name in names {
            guard name.hasSuffix(".png"), let sample = Int(name.dropLast(4)), kept.contains(sample), String(sample) + ".png" == name else {
                throw AuditError.invalid("\(folderURL.path)/\(name) is not the overlay of a sample the report shows")
            }
            let url = folderURL.appendingPathComponent(name)
            let data: Data
            do { data = try FileIO.data(of: url.path) } catch let error as FileError {
                throw AuditError.invalid("cannot read the overlay \(url.path): \(error.reason)")
            }
            let picture: RGBImage
            do { picture = try RGBImage(data: data, path: url.path) } catch {
                throw AuditError.invalid("\(url.path) is not a valid overlay: \(error)")
            }
            // The image as the model saw it and the overlay, side by side with a 2-pixel gap.
            guard picture.height == config.height, picture.width == 2 * config.width + 2 else {
                throw AuditError.invalid("\(url.path) is \(picture.width)x\(picture.height), not an overlay of a \(config.width)x\(config.height) input")
            }
            result[sample] = data
        }
        if let missing = kept.subtracting(result.keys).min() {
            throw AuditError.invalid("\(folderURL.path)/\(missing).png is missing: the report needs the overlay of sample \(missing)")
        }
        return result
    }
}

/// The records of a state, one at a time, each with its pooled map and embedding, checked as
/// they pass; ``finish()`` then checks what only the whole stream shows (counts, group sums).
final class RecordStream {
    private let state: AuditStateReader
    private let lines: LineReader
    private let pooled: RowReader
    private let embeddings: RowReader?
    private let decoder = JSONDecoder()
    private var last = -1
    private var count = 0
    private var counts: [String: Int] = [:]
    /// Per group, the mass of the pooled maps (each cell's mean times its pixels).
    private var mass: [String: Double] = [:]
    private let cellPixels: [Double]

    init(_ state: AuditStateReader) throws {
        self.state = state
        let folder = state.folder
        lines = try LineReader(folder.appendingPathComponent(AuditStateLayout.records))
        pooled = try RowReader(
            folder.appendingPathComponent(AuditStateLayout.pooled), width: state.grid.cells, rows: state.index.records,
            name: "\(folder.path)/\(AuditStateLayout.pooled)")
        embeddings = state.config.embedTensor == nil ? nil : try RowReader(
            folder.appendingPathComponent(AuditStateLayout.embeddings), width: state.index.embeddingWidth, rows: state.index.records,
            name: "\(folder.path)/\(AuditStateLayout.embeddings)")
        cellPixels = state.grid.pixelsPerCell.map(Double.init)
    }

    /// The next record, or `nil` after the last.
    func next() throws -> (record: SampleRecord, pooled: [Float], embedding: [Float])? {
        let file = "\(state.folder.path)/\(AuditStateLayout.records)"
        guard let line = try lines.next() else { return nil }
        let record: SampleRecord
        do { record = try decoder.decode(SampleRecord.self, from: Data(line)) } catch let error as DecodingError {
            throw AuditError.invalid("\(file) line \(lines.lineNumber) is not a sample record (\(AuditError.describe(error)))")
        }
        func refuse(_ what: String) -> AuditError { AuditError.invalid("\(file) line \(lines.lineNumber) (\(record.file)): \(what)") }
        guard count < state.index.records else { throw refuse("more records than index.json's \(state.index.records)") }
        guard record.index > last, record.index < state.config.total else {
            throw refuse("index \(record.index) is out of order or outside the audit's \(state.config.total) images")
        }
        guard state.index.groups[record.group] != nil else { throw refuse("group '\(record.group)' is not in index.json") }
        guard record.confidence.isFinite, record.predicted >= 0, record.target >= 0, (record.scores != nil) == (state.config.mask != nil),
            record.scores.map({ $0.inMask.isFinite && $0.iou.isFinite }) ?? true,
            record.counterfactual.map({ $0.confidence.isFinite && $0.predicted >= 0 }) ?? true,
            (record.counterfactual == nil) || state.config.counterfactual != nil,
            record.faithfulness.map({ [$0.camMultConfidenceChange, $0.roadCombined].allSatisfy(\.isFinite) }) ?? true
        else { throw refuse("values that an audit with these settings cannot produce") }
        last = record.index
        count += 1
        counts[record.group, default: 0] += 1
        let row = try pooled.next()
        var total = 0.0
        for (value, pixels) in zip(row, cellPixels) {
            guard value.isFinite, value >= 0 else { throw refuse("its pooled map holds \(value)") }
            total += Double(value) * pixels
        }
        mass[record.group, default: 0] += total
        let embedding = try embeddings?.next() ?? []
        guard embedding.allSatisfy(\.isFinite) else { throw refuse("its embedding holds a value that is not finite") }
        return (record, row, embedding)
    }

    /// Checks the stream as a whole once every record was read: the counts of index.json, and
    /// each group's sums against its pooled maps.
    ///
    /// A group's sums (fixed point, 2⁻²⁴ per pixel and sample) and the mass of its pooled maps
    /// (float32 cell means, relative error 2⁻²⁴ each) measure the same total attention: they
    /// agree within 10⁻⁵ of it plus 2⁻²³ per pixel and sample. A hand-made or damaged sums.json
    /// (empty, scaled, overflowing) fails by far more.
    func finish() throws {
        let name = "\(state.folder.path)/\(AuditStateLayout.records)"
        guard try lines.next() == nil else { throw AuditError.invalid("\(name) holds more lines than its \(state.index.records) records") }
        guard count == state.index.records, counts == state.index.groups else {
            throw AuditError.invalid("\(name) holds \(count) records, index.json counts \(state.index.records) (or other groups)")
        }
        let pixels = Double(state.config.height * state.config.width)
        for (group, values) in state.sums {
            let summed = values.reduce(0.0) { $0 + Double($1) } / AuditStateLayout.fixedPointScale
            let pooled = mass[group] ?? 0
            let members = Double(counts[group] ?? 0)
            let tolerance = 1e-5 * max(summed, pooled) + members * pixels * 2 / AuditStateLayout.fixedPointScale
            guard abs(summed - pooled) <= tolerance else {
                throw AuditError.invalid(
                    "\(state.folder.path)/\(AuditStateLayout.sums): group '\(group)' sums to \(summed) but its \(Int(members)) pooled maps to \(pooled): the state is damaged")
            }
        }
    }
}

/// The issues of a state, one at a time, checked as they pass.
final class IssueStream {
    private let state: AuditStateReader
    private let lines: LineReader
    private let decoder = JSONDecoder()
    private var last = -1
    private var count = 0

    init(_ state: AuditStateReader) throws {
        self.state = state
        lines = try LineReader(state.folder.appendingPathComponent(AuditStateLayout.issues))
    }

    func next() throws -> SampleIssue? {
        let file = "\(state.folder.path)/\(AuditStateLayout.issues)"
        guard let line = try lines.next() else {
            guard count == state.index.issues else { throw AuditError.invalid("\(file) holds \(count) issues, index.json counts \(state.index.issues)") }
            return nil
        }
        let issue: SampleIssue
        do { issue = try decoder.decode(SampleIssue.self, from: Data(line)) } catch let error as DecodingError {
            throw AuditError.invalid("\(file) line \(lines.lineNumber) is not a sample issue (\(AuditError.describe(error)))")
        }
        guard issue.index > last, issue.index < state.config.total, count < state.index.issues else {
            throw AuditError.invalid("\(file) line \(lines.lineNumber): index \(issue.index) is out of order, outside the audit, or beyond index.json's count")
        }
        last = issue.index
        count += 1
        return issue
    }
}

extension AuditError {
    /// Where and how JSON failed to decode, in words (Foundation's text names Swift types).
    public static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "at the top level" : "at \(keys.hasPrefix(".") ? String(keys.dropFirst()) : keys)"
        }
        switch error {
        case .typeMismatch(let type, let context): return "expected \(type) \(path(context))"
        case .valueNotFound(let type, let context): return "expected \(type) \(path(context)), found null"
        case .keyNotFound(let key, let context): return "missing '\(key.stringValue)' \(path(context))"
        case .dataCorrupted(let context): return context.codingPath.isEmpty ? "not valid JSON" : "a bad value \(path(context))"
        @unknown default: return "unreadable"
        }
    }
}

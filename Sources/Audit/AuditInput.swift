import Detectors
import Foundation

/// The rows of `groups.csv`, read one at a time: a header naming `file` and `group` columns (and
/// optionally `label`), then one row per image. Quoted fields may hold commas.
final class GroupsCSV {
    private let lines: LineReader
    private let path: String
    private let fileColumn: Int
    private let groupColumn: Int
    private let labelColumn: Int?
    private var row = -1

    init(_ url: URL) throws {
        path = url.path
        lines = try LineReader(url)
        var header: [String]?
        while header == nil, let line = try lines.next() {
            let fields = CSV.fields(in: String(decoding: line, as: UTF8.self))
            if !fields.allSatisfy(\.isEmpty) { header = fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } }
        }
        guard let header, let file = header.firstIndex(of: "file"), let group = header.firstIndex(of: "group") else {
            throw AuditError.invalid("\(url.path) needs a header with 'file' and 'group' columns (and optionally 'label')")
        }
        fileColumn = file
        groupColumn = group
        labelColumn = header.firstIndex(of: "label")
    }

    /// The next row (its position among the data rows, from 0), or `nil` at the end.
    func next() throws -> (index: Int, sample: AuditSample)? {
        while let line = try lines.next() {
            let fields = CSV.fields(in: String(decoding: line, as: UTF8.self))
            if fields.allSatisfy(\.isEmpty) { continue }
            row += 1
            guard fields.count > max(fileColumn, groupColumn) else {
                throw AuditError.invalid("\(path) line \(lines.lineNumber) has \(fields.count) fields")
            }
            var label: Int?
            if let labelColumn, labelColumn < fields.count, !fields[labelColumn].isEmpty {
                guard let value = Int(fields[labelColumn].trimmingCharacters(in: .whitespaces)) else {
                    throw AuditError.invalid("\(path) line \(lines.lineNumber): label '\(fields[labelColumn])' is not a class index")
                }
                label = value
            }
            return (row, AuditSample(file: fields[fileColumn], group: fields[groupColumn], label: label))
        }
        return nil
    }
}

/// The images an audit reads: `groups.csv` and the folder its files are relative to, scanned once
/// up front (rows counted and checked, repeated files found) and then streamed batch by batch,
/// so the list itself is never held in memory.
///
/// A file listed on several rows (the same path once resolved against the folder) is audited
/// at its first row; each later row is reported, not counted again (``SampleIssue/Kind/duplicate``).
public struct AuditInput: Sendable {
    /// The groups.csv file.
    public let csv: URL
    /// The folder the files of groups.csv are relative to.
    public let folder: URL
    /// Data rows of the CSV.
    public let count: Int
    /// Hashes of the paths that occur more than once (hashes, not paths, so the scan's memory
    /// stays small; rows are compared by their full paths when streamed).
    let repeated: Set<Int>

    /// Scans `csv`: every row must parse; nothing is read from the images yet.
    public init(csv: URL, folder: URL) throws {
        self.csv = csv
        self.folder = folder
        let rows = try GroupsCSV(csv)
        var hashes: [Int] = []
        while let (_, sample) = try rows.next() { hashes.append(Self.path(sample, in: folder).hashValue) }
        count = hashes.count
        hashes.sort()
        var repeated = Set<Int>()
        for i in hashes.indices.dropFirst() where hashes[i] == hashes[i - 1] { repeated.insert(hashes[i]) }
        self.repeated = repeated
    }

    /// Where a row's file is, resolved against the images folder.
    static func path(_ sample: AuditSample, in folder: URL) -> String {
        folder.appendingPathComponent(sample.file).standardizedFileURL.path
    }

    /// The rows in order, each with the earlier row that listed the same file, if any.
    func rows() throws -> AnyIterator<Result<(index: Int, sample: AuditSample, duplicateOf: Int?), Error>> {
        let reader = try GroupsCSV(csv)
        var first: [String: Int] = [:]
        var failed = false
        return AnyIterator {
            guard !failed else { return nil }
            do {
                guard let (index, sample) = try reader.next() else { return nil }
                var duplicateOf: Int?
                let path = Self.path(sample, in: folder)
                if repeated.contains(path.hashValue) {
                    if let earlier = first[path] { duplicateOf = earlier } else { first[path] = index }
                }
                return .success((index, sample, duplicateOf))
            } catch {
                failed = true
                return .failure(error)
            }
        }
    }

    /// The first row whose image decodes, for settling the region's space (the same row in every shard).
    public func firstReadable(_ read: (URL) throws -> (width: Int, height: Int)) throws -> (width: Int, height: Int) {
        var lastError: Error?
        for row in try rows() {
            let (_, sample, duplicateOf) = try row.get()
            guard duplicateOf == nil else { continue }
            do { return try read(folder.appendingPathComponent(sample.file)) } catch { lastError = error }
        }
        throw AuditError.invalid(
            count == 0 ? "\(csv.path) lists no images" : "no image listed in \(csv.path) could be read (\(lastError.map { "\($0)" } ?? ""))")
    }

    /// The batches shard `part` of `parts` audits, in order.
    ///
    /// The rows (repeats skipped) are cut into batches of `batchSize`, and shards take every
    /// `parts`-th batch: each image is computed in the same batch whether the audit is sharded or
    /// not, so the numbers (which BLAS may round differently for other batch shapes) agree
    /// exactly. A repeated row goes with the batch that was filling when it came, so every shard
    /// reports the repeats among its own rows.
    public func batches(batchSize: Int, part: Int = 1, of parts: Int = 1) throws -> AnyIterator<Result<AuditBatch, Error>> {
        let rows = try rows()
        let size = max(batchSize, 1)
        var number = 0
        var finished = false
        return AnyIterator {
            while !finished {
                var batch = AuditBatch(number: number, items: [])
                var samples = 0
                while samples < size {
                    guard let row = rows.next() else {
                        finished = true
                        break
                    }
                    switch row {
                    case .failure(let error):
                        finished = true
                        return .failure(error)
                    case .success(let (index, sample, duplicateOf)):
                        batch.items.append(AuditBatch.Item(index: index, sample: sample, duplicateOf: duplicateOf))
                        if duplicateOf == nil { samples += 1 }
                    }
                }
                number += 1
                guard !batch.items.isEmpty else { return nil }
                if batch.number % parts == part - 1 { return .success(batch) }
            }
            return nil
        }
    }
}

/// The rows of groups.csv that one forward and backward pass audits together, with the repeats
/// among them.
public struct AuditBatch: Sendable {
    /// One row of the batch.
    public struct Item: Sendable {
        /// Position in groups.csv (data rows from 0).
        public let index: Int
        /// The row's file, group and label.
        public let sample: AuditSample
        /// The earlier row that listed the same file: this row is reported, not audited.
        public let duplicateOf: Int?
    }

    /// Position among the audit's batches (from 0).
    public let number: Int
    /// The rows, in order, repeats included.
    public var items: [Item]
}

import Foundation
import TensorCore

/// A groups CSV, read by header name: `group` (required), `label` and `file` (optional); other
/// columns are ignored. Quoted fields may hold commas and doubled quotes.
public struct GroupTable: Sendable, Equatable {
    /// One row of the table.
    public struct Row: Sendable, Equatable {
        /// The sample's group.
        public let group: String
        /// The sample's label, when the table has a label column.
        public let label: String?
        /// The sample's file, when the table has a file column.
        public let file: String?
    }

    /// The rows in file order.
    public let rows: [Row]
    /// Whether the header has a `file` column.
    public let hasFiles: Bool
    /// Where the table came from, for messages.
    public let source: String

    /// A table from its rows; `source` names it in errors.
    public init(rows: [Row], hasFiles: Bool, source: String) {
        self.rows = rows
        self.hasFiles = hasFiles
        self.source = source
    }

    /// Reads a CSV file with a `group` column and optional `file` and `label` columns.
    public static func read(csv url: URL) throws -> GroupTable {
        let text: String
        do { text = try FileIO.text(of: url.path) } catch let error as FileError {
            throw DetectorError.invalidInput("cannot read \(url.path): \(error.reason)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { CSV.fields(in: String($0)) }.filter { !$0.allSatisfy(\.isEmpty) }
        guard let header = lines.first?.map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }),
            let groupColumn = header.firstIndex(of: "group")
        else { throw DetectorError.invalidInput("\(url.path) needs a header with a 'group' column (and optionally 'label' and 'file')") }
        let labelColumn = header.firstIndex(of: "label")
        let fileColumn = header.firstIndex(of: "file")
        let rows = try lines.dropFirst().enumerated().map { number, fields -> Row in
            guard groupColumn < fields.count, !fields[groupColumn].isEmpty else {
                throw DetectorError.invalidInput("\(url.path) line \(number + 2) has no group")
            }
            func field(_ column: Int?) -> String? {
                guard let column, column < fields.count, !fields[column].isEmpty else { return nil }
                return fields[column]
            }
            if fileColumn != nil, field(fileColumn) == nil {
                throw DetectorError.invalidInput("\(url.path) line \(number + 2) has no file")
            }
            return Row(group: fields[groupColumn], label: field(labelColumn), file: field(fileColumn))
        }
        return GroupTable(rows: rows, hasFiles: fileColumn != nil, source: url.path)
    }

    /// Groups and labels in the order of the embedding rows: matched by file name when the table
    /// has a `file` column and the embeddings' file order is known, else by position.
    ///
    /// - Parameters:
    ///   - count: The number of embedding rows.
    ///   - files: The file of each embedding row (`embed`'s `.files.txt`), if known.
    /// - Returns: Labels only when every row has one.
    public func aligned(count: Int, files: [String]?) throws -> (groups: [String], labels: [String]?) {
        let ordered: [Row]
        if hasFiles, let files {
            guard files.count == count else {
                throw DetectorError.invalidInput("the file list names \(files.count) files but the embeddings have \(count) rows")
            }
            var byFile: [String: Row] = [:]
            for row in rows {
                guard let file = row.file else { continue }
                if byFile[file] != nil { throw DetectorError.invalidInput("\(source) lists \(file) twice") }
                byFile[file] = row
            }
            let missing = files.filter { byFile[$0] == nil }
            guard missing.isEmpty else {
                throw DetectorError.invalidInput(
                    "\(missing.count) of the \(count) embedded files are not in \(source), e.g. \(missing.prefix(3).joined(separator: ", "))")
            }
            ordered = files.compactMap { byFile[$0] }
        } else {
            guard rows.count == count else {
                throw DetectorError.invalidInput(
                    "\(source) has \(rows.count) rows but the embeddings have \(count); rows are matched by position"
                        + (hasFiles ? " (no file list beside the embeddings to match by file)" : ""))
            }
            ordered = rows
        }
        let labels = ordered.compactMap(\.label)
        return (ordered.map(\.group), labels.count == ordered.count ? labels : nil)
    }
}

/// Comma-separated values.
package enum CSV {
    /// The fields of one line; quoted fields may hold commas and doubled quotes.
    package static func fields(in line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var pendingQuote = false  // a quote inside a quoted field: closing, or the first of a pair
        for c in line {
            if pendingQuote {
                pendingQuote = false
                if c == "\"" {
                    current.append("\"")
                    continue
                }
                quoted = false
            }
            if quoted {
                if c == "\"" { pendingQuote = true } else { current.append(c) }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                fields.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        fields.append(current)
        return fields
    }
}

import Detectors
import Explain
import Foundation
import GraphEngine
import Imaging
import TensorCore

/// One row of `groups.csv`: an image, its group and, optionally, its label.
public struct AuditSample: Sendable, Equatable {
    public let file: String
    public let group: String
    public let label: Int?

    public init(file: String, group: String, label: Int?) {
        self.file = file
        self.group = group
        self.label = label
    }

    /// Reads `groups.csv`: a header naming `file` and `group` columns (and optionally `label`),
    /// then one row per image. Quoted fields may hold commas.
    public static func read(csv url: URL) throws -> [AuditSample] {
        let text: String
        do { text = try FileIO.text(of: url.path) } catch let error as FileError {
            throw AuditError.invalid("cannot read \(url.path): \(error.reason)")
        }
        return try parse(csv: text, path: url.path)
    }

    /// Parses the text of `groups.csv` (see ``read(csv:)``); `path` labels errors.
    public static func parse(csv text: String, path: String) throws -> [AuditSample] {
        let rows = text.split(whereSeparator: \.isNewline).map { CSV.fields(in: String($0)) }.filter { !$0.allSatisfy(\.isEmpty) }
        guard let header = rows.first?.map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }),
            let fileColumn = header.firstIndex(of: "file"), let groupColumn = header.firstIndex(of: "group")
        else { throw AuditError.invalid("\(path) needs a header with 'file' and 'group' columns (and optionally 'label')") }
        let labelColumn = header.firstIndex(of: "label")
        return try rows.dropFirst().enumerated().map { number, row in
            guard row.count > max(fileColumn, groupColumn) else {
                throw AuditError.invalid("\(path) line \(number + 2) has \(row.count) fields")
            }
            var label: Int?
            if let labelColumn, labelColumn < row.count, !row[labelColumn].isEmpty {
                guard let value = Int(row[labelColumn].trimmingCharacters(in: .whitespaces)) else {
                    throw AuditError.invalid("\(path) line \(number + 2): label '\(row[labelColumn])' is not a class index")
                }
                label = value
            }
            return AuditSample(file: row[fileColumn], group: row[groupColumn], label: label)
        }
    }
}

/// Which class each heatmap explains.
public enum AuditTarget: Sendable, Equatable, CustomStringConvertible {
    case predicted
    case label
    case fixed(Int)

    public init(_ text: String) throws {
        switch text {
        case "predicted": self = .predicted
        case "label": self = .label
        default:
            guard let value = Int(text), value >= 0 else {
                throw AuditError.invalid("--target must be predicted, label or a class index, got '\(text)'")
            }
            self = .fixed(value)
        }
    }

    public var description: String {
        switch self {
        case .predicted: "predicted"
        case .label: "label"
        case .fixed(let c): String(c)
        }
    }
}

/// Runs heatmaps over a dataset in batches, keeping only what the report needs.
public struct Auditor {
    public let generator: GradCAMHeatmapGenerator
    public let preprocessing: Preprocessing
    public let mask: RegionMask?
    public let target: AuditTarget
    public let config: AuditConfig

    public init(
        generator: GradCAMHeatmapGenerator, preprocessing: Preprocessing, mask: RegionMask?, target: AuditTarget, config: AuditConfig
    ) {
        self.generator = generator
        self.preprocessing = preprocessing
        self.mask = mask
        self.target = target
        self.config = config
    }

    /// The batches of an audit of `samples`, and the ones shard `part` of `parts` runs: the whole list
    /// is cut into batches of `batchSize` and shards take every `parts`-th batch. Each image is
    /// therefore computed in the same batch whether the audit is sharded or not, so the numbers
    /// (which BLAS may round differently for other batch shapes) agree exactly.
    public static func batches(_ samples: [AuditSample], batchSize: Int, part: Int = 1, of parts: Int = 1)
        -> [[(index: Int, sample: AuditSample)]]
    {
        let size = max(batchSize, 1)
        return stride(from: 0, to: samples.count, by: size).enumerated().filter { $0.offset % parts == part - 1 }.map { _, start in
            (start..<min(start + size, samples.count)).map { (index: $0, sample: samples[$0]) }
        }
    }

    /// Audits the given batches (see ``batches(_:batchSize:part:of:)``), images resolved against `folder`.
    public func run(_ batches: [[(index: Int, sample: AuditSample)]], folder: URL, progress: (Int) -> Void = { _ in }) throws -> AuditState {
        var state = AuditState(config: config)
        let input = generator.executor.inputs[0].name
        let output = generator.outputName
        for chunk in batches {
            let (batch, images) = try preprocessing.batch(chunk.map { folder.appendingPathComponent($0.sample.file) })
            // The embeddings come from the same forward pass as the predictions, before any heatmap.
            let forward = try generator.executor.run([input: batch], fetch: [output] + (config.embedTensor.map { [$0] } ?? []))
            guard let logits = forward[output], logits.rank == 2 else {
                throw AuditError.invalid("the model's output \(output) is not [batch, classes]")
            }
            let embeddings = try config.embedTensor.flatMap { name in
                try forward[name].map { try Embeddings.pooled(generator.channelsFirstMap($0, of: name, inputs: batch)) }
            } ?? []
            let width = embeddings.count / max(chunk.count, 1)
            let probabilities = softmaxRows(try logits.doubles(), width: logits.shape[1])
            let predicted = probabilities.map { row in row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) } ?? 0 }
            let classes: [Int]? = try {
                switch target {
                case .predicted: return nil
                case .fixed(let c): return Array(repeating: c, count: chunk.count)
                case .label:
                    return try chunk.map { item in
                        guard let label = item.sample.label else {
                            throw AuditError.invalid("--target label needs a label for \(item.sample.file) in groups.csv")
                        }
                        return label
                    }
                }
            }()
            let result = try generator.explain(batch, targetClasses: classes)
            let size = config.height * config.width
            let maps = try result.heatmaps.scalars(as: Float.self)
            for (n, item) in chunk.enumerated() {
                let heatmap = Array(maps[n * size..<(n + 1) * size])
                let record = SampleRecord(
                    index: item.index, file: item.sample.file, group: item.sample.group, label: item.sample.label,
                    predicted: predicted[n], confidence: probabilities[n][predicted[n]], target: result.classes[n],
                    scores: mask.map { RegionScores(heatmap: heatmap, mask: $0, iouFraction: config.iouFraction) })
                try state.add(record, heatmap: heatmap, embedding: Array(embeddings[n * width..<(n + 1) * width])) {
                    let overlay = try Overlay.overlay(
                        image: images[n], heatmap: Tensor(shape: [config.height, config.width], scalars: heatmap))
                    return try PNG.encode(width: overlay.width, height: overlay.height, channels: 3, pixels: overlay.pixels)
                }
            }
            progress(chunk.count)
        }
        return state
    }

    private func softmaxRows(_ values: [Double], width: Int) -> [[Double]] {
        stride(from: 0, to: values.count, by: max(width, 1)).map { start in
            let row = values[start..<start + width]
            let largest = row.max() ?? 0
            let exps = row.map { exp($0 - largest) }
            let total = exps.reduce(0, +)
            return exps.map { $0 / total }
        }
    }
}

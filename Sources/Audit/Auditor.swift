import Detectors
import Explain
import Foundation
import GraphEngine
import Imaging
import TensorCore

/// One row of `groups.csv`: an image, its group and, optionally, its label.
public struct AuditSample: Sendable, Equatable {
    /// The image file, relative to the images folder.
    public let file: String
    /// The image's group.
    public let group: String
    /// The image's label (a class index), when known.
    public let label: Int?

    /// A sample from its fields.
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
    /// Each image's predicted class.
    case predicted
    /// Each image's label from `groups.csv`.
    case label
    /// One class for every image.
    case fixed(Int)

    /// Reads `predicted`, `label` or a class index.
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

    /// `predicted`, `label` or the class index.
    public var description: String {
        switch self {
        case .predicted: "predicted"
        case .label: "label"
        case .fixed(let c): String(c)
        }
    }
}

/// Runs heatmaps over a dataset in batches, keeping only what the report needs.
public struct Auditor: Sendable {
    /// Computes the heatmaps.
    public let generator: GradCAMHeatmapGenerator
    /// Turns image files into model inputs.
    public let preprocessing: Preprocessing
    /// The suspected shortcut region, in model-input pixels, if any.
    public let mask: RegionMask?
    /// Which class each heatmap explains.
    public let target: AuditTarget
    /// The settings the state records.
    public let config: AuditConfig

    /// An auditor from its parts; `config` must describe them.
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
    ///
    /// Per batch: one forward pass gives the predictions (read as `config.outputKind` says) and
    /// the embeddings; the heatmaps follow; with a region and `config.counterfactual`, the filled
    /// inputs are predicted again; with `config.faithfulness`, the maps' faithfulness metrics run.
    public func run(_ batches: [[(index: Int, sample: AuditSample)]], folder: URL, progress: (Int) -> Void = { _ in }) throws -> AuditState {
        var state = AuditState(config: config)
        let setup = try Setup(self)
        for chunk in batches {
            try audit(chunk, folder: folder, setup: setup, into: &state)
            progress(chunk.count)
        }
        return state
    }

    /// Audits the given batches as the synchronous `run` does, checking for
    /// cancellation before each batch and reporting progress after it.
    ///
    /// Each batch runs synchronously on the calling task; between batches the task yields.
    ///
    /// - Parameter progress: Called after each batch with the images done so far and the total.
    /// - Returns: The same state the synchronous variant returns.
    /// - Throws: `CancellationError` when the task is cancelled (the batch under way completes first).
    public func run(
        _ batches: [[(index: Int, sample: AuditSample)]], folder: URL, progress: (@Sendable (BatchProgress) -> Void)? = nil
    ) async throws -> AuditState {
        var state = AuditState(config: config)
        let setup = try Setup(self)
        let total = batches.reduce(0) { $0 + $1.count }
        var done = 0
        for chunk in batches {
            try Task.checkCancellation()
            try audit(chunk, folder: folder, setup: setup, into: &state)
            done += chunk.count
            progress?(BatchProgress(completed: done, total: total))
            await Task.yield()
        }
        return state
    }

    /// What every batch of one audit shares, decided once.
    private struct Setup {
        let input: String
        let output: String
        let kind: OutputKind
        let fill: CounterfactualFill?
        let seed: UInt32
        let faithfulness: Faithfulness?
        let outline: [Bool]?
        /// Reads the embed layer, when the embedding detectors run.
        let embedder: EmbeddingExtractor?

        init(_ auditor: Auditor) throws {
            let (generator, config) = (auditor.generator, auditor.config)
            input = generator.executor.inputs[0].name
            output = generator.outputName
            kind = config.outputKind.flatMap(OutputKind.init(rawValue:)) ?? generator.executor.outputKind(of: output)
            fill = config.counterfactual.flatMap(CounterfactualFill.init(rawValue:))
            seed = config.seed ?? 0
            faithfulness = config.faithfulness.map { [kind, output] in Faithfulness(executor: generator.executor, output: output, kind: kind, options: $0) }
            outline = auditor.mask?.outline
            // The embed layer is read as the CAM reads it when it is one of the target layers.
            embedder = try config.embedTensor.map { name in
                try EmbeddingExtractor(
                    executor: generator.executor, layer: name, inputLayout: generator.inputLayout,
                    layerLayout: generator.layers.contains { $0.tensor == name } ? generator.options.layerLayout : nil)
            }
        }
    }

    /// One batch: predictions, embeddings, heatmaps, counterfactuals and metrics, added to `state`.
    private func audit(_ chunk: [(index: Int, sample: AuditSample)], folder: URL, setup: Setup, into state: inout AuditState) throws {
        let (input, output, kind, fill, seed, faithfulness, outline) =
            (setup.input, setup.output, setup.kind, setup.fill, setup.seed, setup.faithfulness, setup.outline)
        let (batch, images, sizes) = try preprocessing.batch(chunk.map { folder.appendingPathComponent($0.sample.file) })
        if let expected = config.maskImageSize, let odd = sizes.indices.first(where: { [sizes[$0].width, sizes[$0].height] != expected }) {
            throw AuditError.invalid(
                "\(chunk[odd].sample.file) is \(sizes[odd].width)x\(sizes[odd].height) but the region was drawn on images of "
                    + "\(expected[0])x\(expected[1]) (image space); give a mask in model-input coordinates (--mask-space model) for images of several sizes")
        }
        // The embeddings come from the same forward pass as the predictions, before any heatmap.
        let forward = try generator.executor.run([input: batch], fetch: [output] + (config.embedTensor.map { [$0] } ?? []))
        guard let logits = forward[output], logits.rank == 2 else {
            throw AuditError.invalid("the model's output \(output) is not [batch, classes]")
        }
        let embeddings = try setup.embedder.flatMap { embedder in
            try forward[embedder.tensor].map { try embedder.embeddings(of: $0, batch: batch) }
        } ?? []
        let width = embeddings.count / max(chunk.count, 1)
        let probabilities = ClassProbabilities.rows(try logits.doubles(), width: logits.shape[1], kind: kind)
        let predicted = probabilities.map(ClassProbabilities.argmax)
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

        var counterfactuals: [CounterfactualRecord]?
        if let fill, let mask {
            let filled = try fill.apply(batch: batch, region: mask, seeds: chunk.map { TorchGenerator.seed(base: seed, index: $0.index) })
            let after = try generator.executor.classProbabilities(filled, output: output, kind: kind)
            counterfactuals = zip(after, predicted).map { CounterfactualRecord(predicted: ClassProbabilities.argmax($0), confidence: $0[$1]) }
        }
        // Faithfulness on the samples the stride picks (the same ones in shards and single runs).
        var scores: [Int: FaithfulnessScores] = [:]
        let stride = max(config.faithfulnessStride ?? 1, 1)
        let picked = chunk.indices.filter { chunk[$0].index % stride == 0 }
        if let faithfulness, !picked.isEmpty {
            let maps = config.maps == "raw" ? try Faithfulness.unitScaled(result.heatmaps) : result.heatmaps
            let evaluated = try faithfulness.evaluate(
                Self.rows(batch, picked), heatmaps: Self.rows(maps, picked), classes: picked.map { result.classes[$0] },
                indices: picked.map { chunk[$0].index }, baseline: picked.map { probabilities[$0] })
            for (n, score) in zip(picked, evaluated) { scores[n] = score }
        }

        for (n, item) in chunk.enumerated() {
            let heatmap = Array(maps[n * size..<(n + 1) * size])
            var record = SampleRecord(
                index: item.index, file: item.sample.file, group: item.sample.group, label: item.sample.label,
                predicted: predicted[n], confidence: probabilities[n][predicted[n]], target: result.classes[n],
                scores: mask.map { RegionScores(heatmap: heatmap, mask: $0, iouFraction: config.iouFraction) })
            record.imageSize = [sizes[n].width, sizes[n].height]
            record.counterfactual = counterfactuals?[n]
            record.faithfulness = scores[n]
            try state.add(record, heatmap: heatmap, embedding: Array(embeddings[n * width..<(n + 1) * width])) {
                // The image as the model saw it beside the overlay, the region outlined on the overlay.
                var overlay = try Overlay.overlay(
                    image: images[n], heatmap: Tensor(shape: [config.height, config.width], scalars: heatmap))
                if let outline { overlay = try overlay.outlined(outline) }
                let pair = try Panel.sideBySide([images[n], overlay])
                return try PNG.encode(width: pair.width, height: pair.height, channels: 3, pixels: pair.pixels)
            }
        }
    }

    /// The rows `picks` of a tensor along its first axis.
    static func rows(_ x: Tensor, _ picks: [Int]) throws -> Tensor {
        let values = try x.converted(to: .float32).scalars(as: Float.self)
        let size = x.shape.dropFirst().reduce(1, *)
        return try Tensor(shape: [picks.count] + x.shape.dropFirst(), scalars: picks.flatMap { values[$0 * size..<($0 + 1) * size] })
    }
}

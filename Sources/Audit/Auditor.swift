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

    /// Reads every row of `groups.csv` (see ``AuditInput`` for the format and for streaming it).
    public static func read(csv url: URL) throws -> [AuditSample] {
        let rows = try GroupsCSV(url)
        var samples: [AuditSample] = []
        while let (_, sample) = try rows.next() { samples.append(sample) }
        return samples
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


/// Runs heatmaps over a dataset in batches, writing each sample's numbers to the audit's state
/// as it goes (`AuditStateWriter`), so memory stays the same for ten images or a million.
///
/// Per batch the model runs once forward and once backward (``GradCAMHeatmapGenerator/explain(_:targetClasses:fetch:)``):
/// the predictions, the embeddings and the heatmaps all come from that pass. Decoding and
/// preprocessing the next batch, and recording the last one (pooling, sums, overlays), run on
/// their own threads meanwhile, one batch ahead and one behind.
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
    /// Stop at the first image that cannot be audited instead of reporting it and going on.
    public var strict = false

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

    /// A batch read and preprocessed, with the rows it could not use.
    struct Prepared {
        let batch: AuditBatch
        /// The rows audited, in order, with their inputs stacked in `tensor`.
        var audited: [(item: AuditBatch.Item, image: RGBImage, size: (width: Int, height: Int))] = []
        var tensor: Tensor?
        var issues: [SampleIssue] = []
    }

    /// A batch after the model: what the state writer needs.
    struct Computed {
        let prepared: Prepared
        var records: [SampleRecord] = []
        /// `records.count` maps of `height * width` values.
        var maps: [Float] = []
        var embeddings: [Float] = []
    }

    /// Audits shard `part` of `parts` of `input` into `output`'s state; returns the state's counts.
    @discardableResult
    public func run(_ input: AuditInput, part: Int = 1, of parts: Int = 1, into output: OutputFolder, progress: @escaping (Int) -> Void = { _ in }) throws
        -> StateIndex
    {
        try run(input, part: part, of: parts, into: output, beforeBatch: {}, afterBatch: progress)
    }

    /// Audits as the synchronous `run` does, checking for cancellation before each batch and
    /// reporting progress after it.
    ///
    /// - Parameter progress: Called after each batch with the rows of groups.csv done so far and
    ///   the rows in all (for a shard, the whole file's).
    /// - Returns: The same counts the synchronous variant returns.
    /// - Throws: `CancellationError` when the task is cancelled (the batch under way completes
    ///   first; nothing of the state is committed).
    @discardableResult
    public func run(
        _ input: AuditInput, part: Int = 1, of parts: Int = 1, into output: OutputFolder,
        progress: (@Sendable (BatchProgress) -> Void)? = nil
    ) async throws -> StateIndex {
        var done = 0
        let index = try run(input, part: part, of: parts, into: output, beforeBatch: { try Task.checkCancellation() }) { rows in
            done += rows
            progress?(BatchProgress(completed: done, total: input.count))
        }
        await Task.yield()
        return index
    }

    private func run(
        _ input: AuditInput, part: Int, of parts: Int, into output: OutputFolder, beforeBatch: () throws -> Void,
        afterBatch: (Int) -> Void
    ) throws -> StateIndex {
        let writer = try AuditStateWriter(folder: output, config: config)
        let batches = try input.batches(batchSize: config.batchSize, part: part, of: parts)
        let reader = Prefetch<Prepared>(name: "shortcut-detect audit: decode") {
            guard let batch = try batches.next()?.get() else { return nil }
            return try prepare(batch, folder: input.folder)
        }
        defer { reader.cancel() }
        let recorder = Drain<Computed>(name: "shortcut-detect audit: record") { computed in
            try record(computed, into: writer)
        }
        // The embed layer is read as the CAM reads it when it is one of the target layers.
        let embedder = try config.embedTensor.map { name in
            try EmbeddingExtractor(
                executor: generator.executor, layer: name, inputLayout: generator.inputLayout,
                layerLayout: generator.layers.contains { $0.tensor == name } ? generator.options.layerLayout : nil)
        }
        do {
            while true {
                try beforeBatch()
                guard let prepared = try reader.next() else { break }
                try recorder.submit(try compute(prepared, embedder: embedder))
                afterBatch(prepared.batch.items.count)
            }
            try recorder.finish()
        } catch {
            recorder.cancel()
            throw error
        }
        return try writer.finish()
    }

    /// Reads, checks and preprocesses a batch's images; an image that cannot be used becomes an
    /// issue (or, with ``strict``, an error).
    func prepare(_ batch: AuditBatch, folder: URL) throws -> Prepared {
        var prepared = Prepared(batch: batch)
        let wanted = batch.items.filter { $0.duplicateOf == nil }
        let results = preprocessing.prepareEach(wanted.map { folder.appendingPathComponent($0.sample.file) })
        var tensors: [Tensor] = []
        var outcome: [Int: Result<PreparedImage, Error>] = [:]
        for (item, result) in zip(wanted, results) { outcome[item.index] = result }
        for item in batch.items {
            let sample = item.sample
            if let first = item.duplicateOf {
                prepared.issues.append(SampleIssue(
                    index: item.index, file: sample.file, group: sample.group, label: sample.label, kind: .duplicate,
                    message: "the file was already listed on row \(first + 2) of groups.csv, where it is audited"))
                continue
            }
            do {
                guard let result = outcome[item.index] else { continue }
                let image = try result.get()
                if let expected = config.maskImageSize, [image.size.width, image.size.height] != expected {
                    throw AuditError.invalid(
                        "\(sample.file) is \(image.size.width)x\(image.size.height) but the region was drawn on images of \(expected[0])x\(expected[1]) "
                            + "(image space); give a mask in model-input coordinates (--mask-space model) for images of several sizes")
                }
                if let shape = tensors.first?.shape, shape != image.tensor.shape {
                    throw AuditError.invalid("\(sample.file) preprocesses to \(image.tensor.shape), not \(shape) like the others; give a crop")
                }
                tensors.append(image.tensor)
                prepared.audited.append((item, image.image, image.size))
            } catch {
                if strict { throw error }
                prepared.issues.append(SampleIssue(
                    index: item.index, file: sample.file, group: sample.group, label: sample.label, kind: .unusable, message: "\(error)"))
            }
        }
        if !tensors.isEmpty { prepared.tensor = try Preprocessing.stack(tensors, files: prepared.audited.map { folder.appendingPathComponent($0.item.sample.file) }) }
        return prepared
    }

    /// The model's part: one forward and backward pass for predictions, embeddings and heatmaps,
    /// then the counterfactual and faithfulness passes when asked for.
    func compute(_ prepared: Prepared, embedder: EmbeddingExtractor?) throws -> Computed {
        var computed = Computed(prepared: prepared)
        guard let batch = prepared.tensor else { return computed }
        let chunk = prepared.audited
        let output = generator.outputName
        let kind = config.outputKind.flatMap(OutputKind.init(rawValue:)) ?? generator.executor.outputKind(of: output)
        let classes: [Int]? = try {
            switch target {
            case .predicted: return nil
            case .fixed(let c): return Array(repeating: c, count: chunk.count)
            case .label:
                return try chunk.map { entry in
                    guard let label = entry.item.sample.label else {
                        throw AuditError.invalid("--target label needs a label for \(entry.item.sample.file) in groups.csv")
                    }
                    return label
                }
            }
        }()
        // One pass: the logits and the embed layer come from the forward pass the heatmaps run.
        let result = try generator.explain(batch, targetClasses: classes, fetch: embedder.map { [$0.tensor] } ?? [])
        let logits = result.logits
        guard logits.rank == 2, logits.shape[0] == chunk.count else {
            throw AuditError.invalid("the model's output \(output) is not [batch, classes]")
        }
        if let embedder {
            guard let value = result.fetched[embedder.tensor] else { throw AuditError.invalid("the embed layer's tensor \(embedder.tensor) was not computed") }
            computed.embeddings = try embedder.embeddings(of: value, batch: batch)
        }
        let probabilities = ClassProbabilities.rows(try logits.doubles(), width: logits.shape[1], kind: kind)
        let predicted = probabilities.map(ClassProbabilities.argmax)
        computed.maps = try result.heatmaps.scalars(as: Float.self)
        let size = config.height * config.width

        var counterfactuals: [CounterfactualRecord]?
        if let fill = config.counterfactual.flatMap(CounterfactualFill.init(rawValue:)), let mask {
            let seeds = chunk.map { TorchGenerator.seed(base: config.seed ?? 0, index: $0.item.index) }
            let after = try generator.executor.classProbabilities(try fill.apply(batch: batch, region: mask, seeds: seeds), output: output, kind: kind)
            counterfactuals = zip(after, predicted).map { CounterfactualRecord(predicted: ClassProbabilities.argmax($0), confidence: $0[$1]) }
        }
        // Faithfulness on the samples the stride picks (the same ones in shards and single runs).
        var scores: [Int: FaithfulnessScores] = [:]
        let stride = max(config.faithfulnessStride ?? 1, 1)
        let picked = chunk.indices.filter { chunk[$0].item.index % stride == 0 }
        if let options = config.faithfulness, !picked.isEmpty {
            let faithfulness = Faithfulness(executor: generator.executor, output: output, kind: kind, options: options)
            let maps = config.maps == "raw" ? try Faithfulness.unitScaled(result.heatmaps) : result.heatmaps
            let evaluated = try faithfulness.evaluate(
                Self.rows(batch, picked), heatmaps: Self.rows(maps, picked), classes: picked.map { result.classes[$0] },
                indices: picked.map { chunk[$0].item.index }, baseline: picked.map { probabilities[$0] })
            for (n, score) in zip(picked, evaluated) { scores[n] = score }
        }
        for (n, entry) in chunk.enumerated() {
            let sample = entry.item.sample
            var record = SampleRecord(
                index: entry.item.index, file: sample.file, group: sample.group, label: sample.label,
                predicted: predicted[n], confidence: probabilities[n][predicted[n]], target: result.classes[n],
                scores: mask.map { RegionScores(heatmap: Array(computed.maps[n * size..<(n + 1) * size]), mask: $0, iouFraction: config.iouFraction) })
            record.imageSize = [entry.size.width, entry.size.height]
            record.counterfactual = counterfactuals?[n]
            record.faithfulness = scores[n]
            computed.records.append(record)
        }
        return computed
    }

    /// Writes a computed batch into the state, records and issues in row order.
    func record(_ computed: Computed, into writer: AuditStateWriter) throws {
        let size = config.height * config.width
        let width = computed.records.isEmpty ? 0 : computed.embeddings.count / computed.records.count
        let outline = mask?.outline
        for issue in computed.prepared.issues { try writer.add(issue) }
        for (n, record) in computed.records.enumerated() {
            let heatmap = computed.maps[n * size..<(n + 1) * size]
            let image = computed.prepared.audited[n].image
            try writer.add(record, heatmap: heatmap, embedding: computed.embeddings[n * width..<(n + 1) * width]) {
                // The image as the model saw it beside the overlay, the region outlined on the overlay.
                var overlay = try Overlay.overlay(
                    image: image, heatmap: Tensor(shape: [config.height, config.width], scalars: Array(heatmap)))
                if let outline { overlay = try overlay.outlined(outline) }
                let pair = try Panel.sideBySide([image, overlay])
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

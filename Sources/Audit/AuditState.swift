import Foundation
import Imaging
import TensorCore

/// What an audit is configured with; identical for every shard of one audit.
public struct AuditConfig: Codable, Sendable, Equatable {
    /// The model file's name.
    public var model: String
    /// The target layer as requested.
    public var layer: String
    /// The tensor the layer resolved to.
    public var tensor: String
    /// The CAM method's name (``CAMMethod``'s raw value).
    public var method: String
    /// `normalized` (pytorch-grad-cam's per-image scaling) or `raw` (comparable across images).
    public var maps: String
    /// `predicted`, `label`, or a class index.
    public var target: String
    /// The preprocessing in words.
    public var preprocessing: String
    /// How the region was given, or `nil` without one.
    public var mask: String?
    /// The region's share of the input's pixels.
    public var maskArea: Double?
    /// In-region share above which a sample counts as relying on the region.
    public var threshold: Double
    /// The share of a map's pixels, highest first, that intersection over union compares with the region.
    public var iouFraction: Double
    /// The model input's height in pixels.
    public var height: Int
    /// The model input's width in pixels.
    public var width: Int
    /// Images in the whole audit (all shards).
    public var total: Int
    /// Images per batch; shards and single runs must agree on it to agree on every number.
    public var batchSize: Int
    /// The layer whose pooled output feeds the embedding detectors, and its tensor; `nil` when
    /// they do not run.
    public var embedLayer: String?
    /// The tensor the embed layer resolved to.
    public var embedTensor: String?
    /// How the model's output was read: `logits`, `probabilities` or `auto` (see ``OutputKind``).
    public var outputKind: String?
    /// The transform, step by step (``transform``).
    public var transform: Transform?
    /// Which space the region was drawn in (`image` or `model`), why, and its flags (``RegionMask/packed``).
    public var maskSpace: String?
    /// Why the region is in that space.
    public var maskReason: String?
    /// The region's pixels, packed.
    public var maskPixels: String?
    /// The images' size an image-space region was drawn at; every image must have it.
    public var maskImageSize: [Int]?
    /// The counterfactual fill, when the test ran.
    public var counterfactual: String?
    /// The base seed of the counterfactual noise and ROAD's imputation noise.
    public var seed: UInt32?
    /// The faithfulness metrics' settings, when they ran.
    public var faithfulness: FaithfulnessOptions?
    /// The metrics run on the samples whose index is a multiple of this (1: every sample).
    public var faithfulnessStride: Int?
    /// Whether spectral relevance analysis runs on the maps.
    public var spray: Bool?

    /// The preprocessing, as the report states it.
    public struct Transform: Codable, Sendable, Equatable {
        /// The shorter side after resizing, or `nil` for no resize.
        public var resize: Int?
        /// Height and width of the centre crop.
        public var crop: [Int]?
        /// The normalization's per-channel mean.
        public var mean: [Float]
        /// The normalization's per-channel standard deviation.
        public var std: [Float]
        /// Whether images already of the input size are used as they are.
        public var inputSizedAsIs: Bool
        /// The transform in words.
        public var summary: String

        /// The transform `preprocessing` applies.
        public init(_ preprocessing: Preprocessing) {
            resize = preprocessing.resize
            crop = preprocessing.crop.map { [$0.height, $0.width] }
            mean = preprocessing.normalization.mean
            std = preprocessing.normalization.std
            inputSizedAsIs = preprocessing.inputSizedAsIs
            summary = preprocessing.summary
        }

        /// The transform back, to describe what an image of a given size went through.
        public var preprocessing: Preprocessing {
            Preprocessing(
                resize: resize, crop: crop.flatMap { $0.count == 2 ? ($0[0], $0[1]) : nil },
                normalization: Preprocessing.Normalization(mean: mean, std: std), inputSizedAsIs: inputSizedAsIs)
        }
    }

    /// A configuration with every required setting; the optional ones start as `nil`.
    public init(
        model: String, layer: String, tensor: String, method: String, maps: String, target: String, preprocessing: String,
        mask: String?, maskArea: Double?, threshold: Double, iouFraction: Double, height: Int, width: Int, total: Int,
        batchSize: Int, embedLayer: String? = nil, embedTensor: String? = nil
    ) {
        self.model = model
        self.layer = layer
        self.tensor = tensor
        self.method = method
        self.maps = maps
        self.target = target
        self.preprocessing = preprocessing
        self.mask = mask
        self.maskArea = maskArea
        self.threshold = threshold
        self.iouFraction = iouFraction
        self.height = height
        self.width = width
        self.total = total
        self.batchSize = batchSize
        self.embedLayer = embedLayer
        self.embedTensor = embedTensor
    }
}

/// One audited image.
public struct SampleRecord: Codable, Sendable, Equatable {
    /// Position in the audit's file list (the order of groups.csv).
    public let index: Int
    /// The image file, relative to the images folder.
    public let file: String
    /// The image's group.
    public let group: String
    /// The image's label, when known.
    public let label: Int?
    /// The predicted class.
    public let predicted: Int
    /// The predicted class's probability.
    public let confidence: Double
    /// The class the heatmap explains.
    public let target: Int
    /// How the heatmap relates to the region, when one was given.
    public let scores: RegionScores?
    /// The image file's own size (width, height), before any resize or crop.
    public var imageSize: [Int]?
    /// The prediction once the region is filled, when the counterfactual test ran.
    public var counterfactual: CounterfactualRecord?
    /// How well the heatmap explains its class, when the metrics ran.
    public var faithfulness: FaithfulnessScores?
}

/// Everything a report is rendered from, kept small enough to hold for any dataset: per-sample
/// records, per-sample maps pooled to a coarse grid, exact per-group sums of the full maps, and
/// the overlays of the samples that rely most and least on the region.
///
/// Sums are kept in 40.24 fixed point, so adding them is associative: a report merged from
/// shards equals, byte for byte, the one a single run writes.
public struct AuditState: Sendable {
    /// The scale of the fixed-point sums: 24 fractional bits.
    public static let fixedPointScale = Double(1 << 24)
    /// Overlays kept per group and end (most, least reliant).
    public static let extremes = 3

    /// The audit's settings.
    public var config: AuditConfig
    /// One record per audited image, in the order they were added.
    public var records: [SampleRecord] = []
    /// Each record's heatmap pooled to a coarse grid, row-major.
    public var pooled: [Float] = []
    /// Per group, the exact fixed-point sum of its full-resolution heatmaps.
    public var sums: [String: [Int64]] = [:]
    /// Overlay PNGs by sample index, for the extreme samples only.
    public var overlays: [Int: Data] = [:]
    /// Each record's embedding (the pooled output of the embed layer), row-major; empty when the
    /// embedding detectors do not run.
    public var embeddings: [Float] = []

    /// Values per embedding row.
    public var embeddingWidth: Int { records.isEmpty ? 0 : embeddings.count / records.count }

    /// A configuration with every required setting; the optional ones start as `nil`.
    public init(config: AuditConfig) { self.config = config }

    var grid: PoolingGrid { PoolingGrid(height: config.height, width: config.width, maxCells: 32) }

    /// Per group, the current most and least region-reliant samples as (in-region share, index).
    private var extremesByGroup: [String: (most: [RelianceKey], least: [RelianceKey])] = [:]

    /// Adds one sample with its heatmap and embedding (and its overlay, kept only while it is an extreme).
    public mutating func add(_ record: SampleRecord, heatmap: [Float], embedding: [Float] = [], overlay: () throws -> Data) rethrows {
        records.append(record)
        embeddings += embedding
        pooled += grid.pool(heatmap)
        var sum = sums[record.group] ?? [Int64](repeating: 0, count: heatmap.count)
        for (i, value) in heatmap.enumerated() { sum[i] += Int64((Double(value) * AuditState.fixedPointScale).rounded()) }
        sums[record.group] = sum
        // Same ranking as extremeIndices, kept incrementally: samples only ever arrive.
        let key = RelianceKey(record)
        let entry = extremesByGroup[record.group] ?? ([], [])
        extremesByGroup[record.group] = (
            RelianceKey.ranked(entry.most + [key]).most, RelianceKey.ranked(entry.least + [key]).least
        )
        let keep = Set(extremesByGroup.values.flatMap { ($0.most + $0.least).map(\.index) })
        if keep.contains(record.index) { overlays[record.index] = try overlay() }
        overlays = overlays.filter { keep.contains($0.key) }
    }

    /// The samples whose overlays the report shows: per group, the most and least region-reliant
    /// (by in-region share, ties to the earlier file), or the first few without a region.
    func extremeIndices(group: String? = nil) -> Set<Int> {
        var chosen = Set<Int>()
        let groups = group.map { [$0] } ?? Array(Set(records.map(\.group)))
        for name in groups {
            let ranked = RelianceKey.ranked(records.filter { $0.group == name }.map(RelianceKey.init))
            chosen.formUnion((ranked.most + ranked.least).map(\.index))
        }
        return chosen
    }

    /// Drops overlays of samples that are no longer extremes.
    mutating func prune() {
        let keep = extremeIndices()
        overlays = overlays.filter { keep.contains($0.key) }
    }

    /// Group mean maps from the exact sums.
    func means() -> [String: [Float]] {
        var counts: [String: Int] = [:]
        for record in records { counts[record.group, default: 0] += 1 }
        return sums.reduce(into: [:]) { result, entry in
            let n = Double(max(counts[entry.key] ?? 1, 1))
            result[entry.key] = entry.value.map { Float(Double($0) / AuditState.fixedPointScale / n) }
        }
    }

    // MARK: - Shards

    /// Combines the states of shards of one audit.
    public static func merge(_ states: [AuditState]) throws -> AuditState {
        guard let first = states.first else { throw AuditError.invalid("nothing to merge") }
        for state in states where state.config != first.config {
            throw AuditError.invalid("these reports come from audits with different settings and cannot be merged")
        }
        var merged = AuditState(config: first.config)
        var rows: [(SampleRecord, ArraySlice<Float>, ArraySlice<Float>)] = []
        for state in states {
            let cells = state.grid.cells
            let width = state.embeddingWidth
            for (n, record) in state.records.enumerated() {
                rows.append((record, state.pooled[n * cells..<(n + 1) * cells], state.embeddings[n * width..<(n + 1) * width]))
            }
            for (group, sum) in state.sums {
                let total = merged.sums[group] ?? [Int64](repeating: 0, count: sum.count)
                guard total.count == sum.count else { throw AuditError.invalid("the shards' maps of group '\(group)' differ in size") }
                merged.sums[group] = try zip(total, sum).map {
                    let (added, overflow) = $0.addingReportingOverflow($1)
                    guard !overflow else { throw AuditError.invalid("the shards' sums of group '\(group)' overflow; the reports are corrupt") }
                    return added
                }
            }
            merged.overlays.merge(state.overlays) { a, _ in a }
        }
        rows.sort { $0.0.index < $1.0.index }
        if let duplicate = zip(rows, rows.dropFirst()).first(where: { $0.0.0.index == $0.1.0.index }) {
            throw AuditError.invalid("sample \(duplicate.0.0.file) appears in two shards")
        }
        merged.records = rows.map(\.0)
        merged.pooled = rows.flatMap(\.1)
        merged.embeddings = rows.flatMap(\.2)
        guard merged.embeddings.count == merged.records.count * (states.first?.embeddingWidth ?? 0) else {
            throw AuditError.invalid("the shards hold embeddings of different widths")
        }
        merged.prune()
        return merged
    }

    /// Writes the state to `folder/state/`.
    public func save(to folder: URL) throws {
        let state = folder.appendingPathComponent("state")
        let candidates = state.appendingPathComponent("overlays")
        try FileManager.default.createDirectory(at: candidates, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(config).write(to: state.appendingPathComponent("config.json"))
        try encoder.encode(records).write(to: state.appendingPathComponent("records.json"))
        try encoder.encode(sums).write(to: state.appendingPathComponent("sums.json"))
        try pooled.withUnsafeBytes { Data($0) }.write(to: state.appendingPathComponent("pooled.f32"))
        if config.embedTensor != nil {
            try embeddings.withUnsafeBytes { Data($0) }.write(to: state.appendingPathComponent("embeddings.f32"))
        }
        for (index, data) in overlays { try data.write(to: candidates.appendingPathComponent("\(index).png")) }
    }

    /// Reads a state written by ``save(to:)``.
    public static func load(from folder: URL) throws -> AuditState {
        let state = folder.appendingPathComponent("state")
        func read(_ name: String) throws -> Data {
            do { return try FileIO.data(of: state.appendingPathComponent(name).path) } catch let error as FileError {
                throw AuditError.invalid("\(folder.path) is not an audit report (state/\(name): \(error.reason))")
            }
        }
        func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
            do { return try JSONDecoder().decode(type, from: read(name)) } catch let error as DecodingError {
                throw AuditError.invalid("\(folder.path)/state/\(name) is not a valid audit state (\(AuditError.describe(error)))")
            }
        }
        var result = AuditState(config: try decode(AuditConfig.self, "config.json"))
        result.records = try decode([SampleRecord].self, "records.json")
        result.sums = try decode([String: [Int64]].self, "sums.json")
        // Sizes that arithmetic below relies on; consistency between the files is merge's concern.
        let config = result.config
        guard config.height >= 1, config.width >= 1, let pixels = MemoryBudget.product(config.height, config.width),
            pixels <= RGBImage.maximumPixels, config.batchSize >= 1, config.total >= 0, config.threshold.isFinite,
            config.iouFraction.isFinite
        else {
            throw AuditError.invalid("\(folder.path)/state/config.json holds impossible settings (a \(config.height)x\(config.width) input, batch size \(config.batchSize))")
        }
        if let (group, sum) = result.sums.first(where: { $0.value.count != pixels }) {
            throw AuditError.invalid("\(folder.path)/state/sums.json: group '\(group)' holds \(sum.count) values for a \(config.height)x\(config.width) input")
        }
        if let record = result.records.first(where: { $0.index < 0 }) {
            throw AuditError.invalid("\(folder.path)/state/records.json: sample \(record.file) has the negative index \(record.index)")
        }
        let pooled = try read("pooled.f32")
        result.pooled = pooled.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        guard result.pooled.count == MemoryBudget.product(result.records.count, result.grid.cells) else {
            throw AuditError.invalid("\(folder.path): state/pooled.f32 does not match its records")
        }
        if result.config.embedTensor != nil {
            let embeddings = try read("embeddings.f32")
            result.embeddings = embeddings.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            guard result.records.isEmpty || result.embeddings.count % result.records.count == 0 else {
                throw AuditError.invalid("\(folder.path): state/embeddings.f32 does not match its records")
            }
        }
        let candidates = state.appendingPathComponent("overlays")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: candidates.path)) ?? [] {
            if let index = Int((name as NSString).deletingPathExtension) {
                result.overlays[index] = try read("overlays/\(name)")
            }
        }
        return result
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

/// A sample as the reliance ranking sees it: its share of attention inside the region and its index.
struct RelianceKey: Equatable {
    let share: Double
    let index: Int
    /// Whether the sample has region scores; without them there is nothing to rank by.
    let scored: Bool

    init(_ record: SampleRecord) {
        (share, index, scored) = (record.scores?.inMask ?? 0, record.index, record.scores != nil)
    }

    /// The one ranking of the most and least region-reliant samples: the `count` with the largest
    /// in-region share and the `count` with the smallest, ties to the earlier file either way.
    /// Without region scores, the first `count` files stand in for the most and none for the least.
    static func ranked(_ keys: [RelianceKey], count: Int = AuditState.extremes) -> (most: [RelianceKey], least: [RelianceKey]) {
        guard keys.allSatisfy(\.scored) else { return (Array(keys.sorted { $0.index < $1.index }.prefix(count)), []) }
        let most = keys.sorted { ($0.share, -$0.index) > ($1.share, -$1.index) }
        let least = keys.sorted { ($0.share, $0.index) < ($1.share, $1.index) }
        return (Array(most.prefix(count)), Array(least.prefix(count)))
    }
}

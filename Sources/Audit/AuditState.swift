import Foundation
import Imaging

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


extension SampleRecord {
    /// A record of the numbers every sample has; the optional ones start as `nil`.
    public init(
        index: Int, file: String, group: String, label: Int?, predicted: Int, confidence: Double, target: Int, scores: RegionScores?
    ) {
        self.index = index
        self.file = file
        self.group = group
        self.label = label
        self.predicted = predicted
        self.confidence = confidence
        self.target = target
        self.scores = scores
    }
}

/// A row of groups.csv that was not audited: an image that could not be read, or a repeated row.
public struct SampleIssue: Codable, Sendable, Equatable {
    /// Why the row was not audited.
    public enum Kind: String, Codable, Sendable {
        /// The file is missing, unreadable or not an image, or it cannot be used as the audit is set up (an image of another size than an image-space region was drawn on).
        case unusable
        /// The file was already listed on an earlier row; it is audited once, at that row.
        case duplicate
    }

    /// Position in groups.csv (data rows from 0), as ``SampleRecord/index``.
    public let index: Int
    /// The row's file, as groups.csv gives it.
    public let file: String
    /// The row's group.
    public let group: String
    /// The row's label, if any.
    public let label: Int?
    /// Why the row was not audited.
    public let kind: Kind
    /// What went wrong, in words.
    public let message: String

    /// An issue from its parts.
    public init(index: Int, file: String, group: String, label: Int?, kind: Kind, message: String) {
        self.index = index
        self.file = file
        self.group = group
        self.label = label
        self.kind = kind
        self.message = message
    }
}

/// Counts that tie the state files together: `state/index.json`.
///
/// A reader checks every file against them (rows of `records.jsonl` and `issues.jsonl`, the exact
/// sizes of `pooled.f32` and `embeddings.f32`, the members of each group in `sums.json`), so a
/// damaged or hand-edited state is refused instead of merged into a wrong report.
public struct StateIndex: Codable, Sendable, Equatable {
    /// Audited samples: rows of `records.jsonl`, of `pooled.f32` and of `embeddings.f32`.
    public var records: Int
    /// Rows of `issues.jsonl`.
    public var issues: Int
    /// Values per embedding row (0 without embeddings).
    public var embeddingWidth: Int
    /// Audited samples per group.
    public var groups: [String: Int]
}

/// The samples whose overlays a report shows: per group the most and least region-reliant (by
/// in-region share, ties to the earlier row), or the first few without a region. Kept as samples
/// arrive, so it never holds more than a few per group.
struct ExtremeSamples: Sendable {
    /// Overlays kept per group and end.
    static let count = 3

    /// Per group, the most (or first, without scores) and the least region-reliant, best first.
    private(set) var most: [String: [RelianceKey]] = [:]
    private(set) var least: [String: [RelianceKey]] = [:]

    /// Takes one sample into account; returns whether it is now among the extremes.
    @discardableResult
    mutating func add(_ record: SampleRecord) -> Bool {
        let key = RelianceKey(record)
        // Samples only ever arrive, so ranking the kept few plus the newcomer is the full ranking.
        let ranked = (
            most: RelianceKey.ranked((most[record.group] ?? []) + [key]).most,
            least: RelianceKey.ranked((least[record.group] ?? []) + [key]).least
        )
        most[record.group] = ranked.most
        least[record.group] = ranked.least
        return kept.contains(record.index)
    }

    /// Indices of every sample kept.
    var kept: Set<Int> { Set((most.values.flatMap { $0 } + least.values.flatMap { $0 }).map(\.index)) }
}

extension AuditConfig {
    /// Throws unless the settings are ones an audit could have written: sizes the arithmetic
    /// of a report relies on, finite thresholds, a region that fits the input.
    func validate(_ source: String) throws {
        func refuse(_ what: String) -> AuditError { AuditError.invalid("\(source) holds impossible settings: \(what)") }
        // Compared without multiplying: height * width may overflow.
        guard height >= 1, width >= 1, height <= RGBImage.maximumPixels / width else {
            throw refuse("a \(height)x\(width) input")
        }
        guard batchSize >= 1, total >= 0 else { throw refuse("batch size \(batchSize), \(total) images") }
        guard threshold.isFinite, iouFraction.isFinite, maskArea.map({ (0...1).contains($0) }) ?? true else {
            throw refuse("threshold \(threshold), IoU fraction \(iouFraction), region area \(maskArea ?? 0)")
        }
        if let maskPixels { _ = try RegionMask(packed: maskPixels, height: height, width: width) }
        if let stride = faithfulnessStride, stride < 1 { throw refuse("faithfulness stride \(stride)") }
    }
}

/// A sample as the reliance ranking sees it: its share of attention inside the region and its index.
struct RelianceKey: Sendable, Equatable {
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
    static func ranked(_ keys: [RelianceKey], count: Int = ExtremeSamples.count) -> (most: [RelianceKey], least: [RelianceKey]) {
        guard keys.allSatisfy(\.scored) else { return (Array(keys.sorted { $0.index < $1.index }.prefix(count)), []) }
        let most = keys.sorted { ($0.share, -$0.index) > ($1.share, -$1.index) }
        let least = keys.sorted { ($0.share, $0.index) < ($1.share, $1.index) }
        return (Array(most.prefix(count)), Array(least.prefix(count)))
    }
}

import Foundation
import GraphEngine
import Imaging
import TensorCore

/// Which faithfulness metrics to compute, and how.
public struct FaithfulnessOptions: Sendable, Equatable, Codable {
    /// The percentiles ROAD removes pixels at (pytorch-grad-cam removes the pixels whose map value
    /// is at or above the percentile, or at or below its mirror for least relevant first).
    public var percentiles: [Int]
    /// The base seed of ROAD's imputation noise, combined with each sample's index.
    public var seed: UInt32
    /// Also the deletion and insertion curves (two forward passes of `curveSteps + 1` inputs per image).
    public var curves: Bool
    /// Steps of the deletion and insertion curves.
    public var curveSteps: Int

    /// Options for the metrics; curves are off by default.
    public init(percentiles: [Int] = [20, 40, 60, 80], seed: UInt32 = 0, curves: Bool = false, curveSteps: Int = 32) {
        self.percentiles = percentiles
        self.seed = seed
        self.curves = curves
        self.curveSteps = curveSteps
    }
}

/// How well one heatmap explains its class, by what happens to the class probability when the
/// input is changed where the map points.
public struct FaithfulnessScores: Sendable, Equatable, Codable {
    /// pytorch-grad-cam's `CamMultImageConfidenceChange`: the probability of the input
    /// multiplied by the map minus that of the input. Near 0 or above: the map keeps what the
    /// model needs.
    public var camMultConfidenceChange: Double
    /// `ROADMostRelevantFirst` per percentile (the options' order): the change in probability when
    /// the pixels the map ranks highest are imputed. Strongly negative: the map found what matters.
    public var roadMostRelevantFirst: [Double]
    /// `ROADLeastRelevantFirst` per percentile: the change when the lowest-ranked pixels are imputed.
    public var roadLeastRelevantFirst: [Double]
    /// `ROADCombined`: (mean least-relevant-first − mean most-relevant-first) / 2. Positive: the
    /// map orders pixels by what the model uses; 0: no better than any order.
    public var roadCombined: Double
    /// Area under the class probability as the most relevant pixels are deleted (lower is better).
    public var deletionAUC: Double?
    /// Area under the class probability as they are inserted into a blurred input (higher is better).
    public var insertionAUC: Double?

    /// pytorch-grad-cam's `DropInConfidence`: `max(−change, 0)`.
    public var dropInConfidence: Double { max(-camMultConfidenceChange, 0) }
    /// pytorch-grad-cam's `IncreaseInConfidence`: 1 when the multiplied input scores higher.
    public var increaseInConfidence: Double { camMultConfidenceChange > 0 ? 1 : 0 }
}

/// pytorch-grad-cam 1.5.7's perturbation metrics (CamMultImageConfidenceChange, DropInConfidence,
/// IncreaseInConfidence, ROAD most and least relevant first with its noisy linear imputer,
/// ROADCombined) and the deletion and insertion curves of RISE (Petsiuk et al. 2018), computed on
/// the model the maps explain. The score is the probability of the explained class (pytorch-grad-cam's
/// `ClassifierOutputSoftmaxTarget`; an output that already is a distribution is not softmaxed again),
/// in float32 as the reference keeps it.
///
/// Deletion and insertion follow RISE's protocol with our fixed choices: pixels ranked by the map
/// (ties by position), `curveSteps` steps of `⌈HW / curveSteps⌉` pixels, deleted pixels set to 0 in
/// the model's input space, insertion starting from the input blurred by a Gaussian at its
/// default σ; the area is RISE's trapezoid over the `curveSteps + 1` points.
public struct Faithfulness {
    /// The metrics' settings.
    public let options: FaithfulnessOptions
    let probabilities: (Tensor) throws -> [[Double]]

    /// Metrics on a model given as a function from an input batch to class probabilities.
    public init(options: FaithfulnessOptions = FaithfulnessOptions(), probabilities: @escaping (Tensor) throws -> [[Double]]) {
        self.options = options
        self.probabilities = probabilities
    }

    /// Metrics on `output` of a model (its kind from the graph unless `kind` says otherwise).
    public init(executor: Executor, output: String, kind: OutputKind? = nil, options: FaithfulnessOptions = FaithfulnessOptions()) {
        let resolved = kind ?? executor.outputKind(of: output)
        self.init(options: options) { try executor.classProbabilities($0, output: output, kind: resolved) }
    }

    /// The scores of each sample of a `[N, C, H, W]` batch and its `[N, H, W]` maps.
    /// - Parameters:
    ///   - classes: The class each map explains.
    ///   - indices: Each sample's position in the data set, which seeds its ROAD noise.
    ///   - baseline: The batch's class probabilities, when already computed.
    public func evaluate(_ inputs: Tensor, heatmaps: Tensor, classes: [Int], indices: [Int], baseline: [[Double]]? = nil) throws
        -> [FaithfulnessScores]
    {
        guard inputs.rank == 4, heatmaps.rank == 3, heatmaps.shape[0] == inputs.shape[0],
            Array(heatmaps.shape[1...]) == Array(inputs.shape[2...])
        else { throw AuditError.invalid("faithfulness needs [N, C, H, W] inputs and [N, H, W] maps, got \(inputs.shape) and \(heatmaps.shape)") }
        let (n, channels, height, width) = (inputs.shape[0], inputs.shape[1], inputs.shape[2], inputs.shape[3])
        guard classes.count == n, indices.count == n else { throw AuditError.invalid("faithfulness needs one class and one index per sample") }
        if let bad = options.percentiles.first(where: { !(1...99).contains($0) }) {
            throw AuditError.invalid("ROAD percentiles must lie in 1...99, got \(bad)")
        }
        let x = try inputs.converted(to: .float32).scalars(as: Float.self)
        let maps = try heatmaps.converted(to: .float32).scalars(as: Float.self)
        let (size, volume) = (height * width, channels * height * width)
        let before = try scores(baseline ?? probabilities(inputs), classes)

        func forward(_ values: [Float]) throws -> [Float] {
            try scores(probabilities(Tensor(shape: inputs.shape, scalars: values).converted(to: inputs.dtype)), classes)
        }
        // CamMultImageConfidenceChange: the input times the map, every channel.
        var multiplied = x
        for s in 0..<n { for c in 0..<channels { for p in 0..<size { multiplied[s * volume + c * size + p] *= maps[s * size + p] } } }
        let camMult = zip(try forward(multiplied), before).map { $0 - $1 }

        // ROAD: per percentile and order, every sample imputed (in parallel), then one forward pass.
        func road(_ percentile: Int, mostRelevantFirst: Bool) throws -> [Float] {
            let results = ConcurrentResults<[Float]>(count: n)
            let base = options.seed
            DispatchQueue.concurrentPerform(iterations: n) { s in
                results.set(s) {
                    var ranking = Array(maps[s * size..<(s + 1) * size])
                    if !mostRelevantFirst { ranking = ranking.map { 1 - $0 } }
                    let threshold = Self.percentile(ranking, percentile)
                    var generator = TorchGenerator(
                        seed: TorchGenerator.seed(base: base, index: indices[s], stream: 1 + 2 * percentile + (mostRelevantFirst ? 0 : 1)))
                    return try NoisyLinearImputer.impute(
                        Array(x[s * volume..<(s + 1) * volume]), channels: channels, height: height, width: width,
                        keep: ranking.map { $0 < threshold }, generator: &generator)
                }
            }
            return zip(try forward(try results.values().flatMap { $0 }), before).map { $0 - $1 }
        }
        var most: [[Float]] = []
        var least: [[Float]] = []
        for percentile in options.percentiles {
            most.append(try road(percentile, mostRelevantFirst: true))
            least.append(try road(percentile, mostRelevantFirst: false))
        }
        // ROADCombined as NumPy does it: float32 means over the percentiles, halved difference.
        func mean(_ rows: [[Float]], _ s: Int) -> Float { rows.reduce(Float(0)) { $0 + $1[s] } / Float(max(rows.count, 1)) }

        var result: [FaithfulnessScores] = []
        for s in 0..<n {
            var entry = FaithfulnessScores(
                camMultConfidenceChange: Double(camMult[s]), roadMostRelevantFirst: most.map { Double($0[s]) },
                roadLeastRelevantFirst: least.map { Double($0[s]) }, roadCombined: Double((mean(least, s) - mean(most, s)) / 2))
            if options.curves {
                let sample = Array(x[s * volume..<(s + 1) * volume])
                let map = Array(maps[s * size..<(s + 1) * size])
                entry.deletionAUC = try curveArea(sample, map: map, target: classes[s], channels: channels, height: height, width: width, insertion: false)
                entry.insertionAUC = try curveArea(sample, map: map, target: classes[s], channels: channels, height: height, width: width, insertion: true)
            }
            result.append(entry)
        }
        return result
    }

    /// The float32 score of each sample's class.
    private func scores(_ rows: [[Double]], _ classes: [Int]) throws -> [Float] {
        try zip(rows, classes).map { row, c in
            guard row.indices.contains(c) else { throw AuditError.invalid("class \(c) is out of range: the output has \(row.count) classes") }
            return Float(row[c])
        }
    }

    /// RISE's deletion (or insertion) curve of one sample, and its area.
    func curveArea(_ x: [Float], map: [Float], target: Int, channels: Int, height: Int, width: Int, insertion: Bool) throws -> Double {
        let size = height * width
        let steps = max(options.curveSteps, 1)
        let order = map.indices.sorted { map[$0] > map[$1] || (map[$0] == map[$1] && $0 < $1) }
        let step = (size + steps - 1) / steps
        var current = insertion
            ? try GaussianBlur.apply(x, channels: channels, height: height, width: width, sigma: GaussianBlur.defaultSigma(height: height, width: width))
            : x
        var batch = current
        batch.reserveCapacity(x.count * (steps + 1))
        for k in 1...steps {
            for p in order[min((k - 1) * step, size)..<min(k * step, size)] {
                for c in 0..<channels { current[c * size + p] = insertion ? x[c * size + p] : 0 }
            }
            batch += current
        }
        let rows = try probabilities(Tensor(shape: [steps + 1, channels, height, width], scalars: batch))
        guard rows.allSatisfy({ $0.indices.contains(target) }) else { throw AuditError.invalid("class \(target) is out of range") }
        let curve = rows.map { $0[target] }
        return (curve.reduce(0, +) - curve[0] / 2 - curve[steps] / 2) / Double(steps)
    }

    /// Raw maps scaled as pytorch-grad-cam scales them, `(m − min) / (1e-7 + max(m − min))` per
    /// image, for the faithfulness metrics, which multiply inputs by maps in [0, 1].
    public static func unitScaled(_ maps: Tensor) throws -> Tensor {
        let size = maps.shape.dropFirst().reduce(1, *)
        let values = try maps.scalars(as: Float.self)
        var out = values
        for n in 0..<maps.shape[0] {
            let map = values[n * size..<(n + 1) * size]
            let low = map.min() ?? 0
            let high = (map.max() ?? 0) - low
            for i in 0..<size { out[n * size + i] = (values[n * size + i] - low) / (1e-7 + high) }
        }
        return try Tensor(shape: maps.shape, scalars: out)
    }

    /// NumPy's default (`linear`) percentile of float32 values, with its float32 interpolation.
    static func percentile(_ values: [Float], _ p: Int) -> Float {
        let sorted = values.sorted()
        guard let last = sorted.indices.last else { return 0 }
        let q = Double(p) / 100
        let virtual = Double(sorted.count) * q + (1 + q * -1) - 1
        let lower = min(max(Int(virtual.rounded(.down)), 0), last)
        let upper = min(max(Int(virtual.rounded(.down)) + 1, 0), last)
        let gamma = virtual - virtual.rounded(.down)
        let (a, b) = (sorted[lower], sorted[upper])
        let difference = b - a
        return gamma >= 0.5 ? b - difference * Float(1 - gamma) : a + difference * Float(gamma)
    }
}

extension Faithfulness {
    /// The scores as `gradcam --metrics-json` writes them: one array per metric, one value per
    /// sample, ROAD's keyed by percentile (`"20"`, `"40"`, ...); `null` where a value is missing.
    public func json(_ scores: [FaithfulnessScores], classes: [Int], files: [String]? = nil) throws -> Data {
        func values(_ pick: (FaithfulnessScores) -> Double?) -> [Any] { scores.map { pick($0).map { $0 as Any } ?? NSNull() } }
        func byPercentile(_ pick: @escaping (FaithfulnessScores) -> [Double]) -> [String: Any] {
            Dictionary(uniqueKeysWithValues: options.percentiles.enumerated().map { k, p in (String(p), values { pick($0)[k] }) })
        }
        var root: [String: Any] = [
            "classes": classes, "road_percentiles": options.percentiles, "seed": Int(options.seed),
            "score": "probability of the explained class (pytorch-grad-cam's ClassifierOutputSoftmaxTarget)",
            "cam_mult_confidence_change": values(\.camMultConfidenceChange), "drop_in_confidence": values(\.dropInConfidence),
            "increase_in_confidence": values(\.increaseInConfidence),
            "road_most_relevant_first": byPercentile(\.roadMostRelevantFirst),
            "road_least_relevant_first": byPercentile(\.roadLeastRelevantFirst), "road_combined": values(\.roadCombined),
        ]
        if options.curves {
            root["deletion_auc"] = values(\.deletionAUC)
            root["insertion_auc"] = values(\.insertionAUC)
            root["curve_steps"] = options.curveSteps
        }
        if let files { root["files"] = files }
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }
}

/// Hierarchical bias-aware clustering, as the reference's `HBACDetector` does it.
///
/// Embeddings are standardized; a seeded permutation holds out 20%. On the rest, up to three
/// times, the cluster whose labels vary most (population standard deviation of the label
/// indices, at least twice the minimum size) is split in two by k-means; halves smaller than
/// 1% of the training rows (at least 2) are dropped. Three signals are then read:
/// - **clustering**: at least two clusters more than 80% pure in one label,
/// - **dimension-specific**: fewer than 10% of the dimensions differ between clusters (one-way
///   ANOVA, `p < 0.01`),
/// - **linear**: a logistic regression trained on the training rows labels the held-out rows
///   with accuracy above 0.85.
/// A shortcut exists with the first signal, or the second and third together; confidence is high
/// with two or more signals, medium with one.
public struct HBACResult: Sendable, Equatable {
    /// Whether the signals amount to a shortcut.
    public let detected: Bool
    /// `low`, `moderate` (the reference's "medium") or `high`.
    public let confidence: RiskLevel
    /// `low` when nothing is detected, else the confidence.
    public let risk: RiskLevel
    /// The signals that fired: `clustering_based`, `dimension_specific`, `linear_separable`.
    public let types: [String]
    /// The leaves of the clustering.
    public let clusters: [Cluster]
    /// Size-weighted mean purity of the clusters.
    public let purity: Double
    /// The held-out accuracy of the linear classifier.
    public let linearAccuracy: Double
    /// Clusters more than 80% pure.
    public let highPurityClusters: Int
    /// Share of dimensions whose cluster means differ (ANOVA `p < 0.01`).
    public let importantDimensionsRatio: Double

    /// One leaf of the clustering (training rows only).
    public struct Cluster: Sendable, Equatable {
        /// Training rows in the cluster.
        public let size: Int
        /// The share of its most common label.
        public let purity: Double
        /// The most common label in the cluster.
        public let dominant: String
        /// How many splits led to it.
        public let depth: Int
    }
}

/// Settings of the clustering.
public struct HBACOptions: Sendable {
    /// Splits of the most mixed cluster.
    public var maxIterations = 3
    /// Smallest cluster, as a share of the training rows.
    public var minClusterSize = 0.01
    /// The held-out share for the linear classifier.
    public var testSize = 0.2

    /// The reference's defaults.
    public init() {}
}

enum HBAC {
    static func run(_ embeddings: Matrix, labels: [Int], names: [String], seed: UInt32, options: HBACOptions) -> HBACResult {
        let x = embeddings.standardized()
        let (train, test) = ReferenceSplit.permuted(count: x.rows, testSize: options.testSize, seed: seed)
        let xTrain = x.rows(train)
        let yTrain = train.map { labels[$0] }
        let minimum = max(Int(Double(train.count) * options.minClusterSize), 2)

        var clusters: [(members: [Int], depth: Int)] = [(Array(0..<train.count), 0)]
        for iteration in 0..<options.maxIterations {
            var chosen: Int?
            var largestSpread = -1.0
            for (c, cluster) in clusters.enumerated() {
                let spread = standardDeviation(cluster.members.map { Double(yTrain[$0]) })
                if spread > largestSpread && cluster.members.count >= 2 * minimum { (largestSpread, chosen) = (spread, c) }
            }
            guard let chosen else { break }
            let parent = clusters.remove(at: chosen)
            let halves = KMeans.fit(xTrain.rows(parent.members), k: 2, seed: UInt64(seed) &+ UInt64(iteration) &* 0x9E37_79B9)
            for half in 0..<2 {
                let members = zip(parent.members, halves).filter { $0.1 == half }.map(\.0)
                if members.count >= minimum { clusters.append((members, parent.depth + 1)) }
            }
        }

        let summaries = clusters.map { cluster -> HBACResult.Cluster in
            var counts = [Int](repeating: 0, count: names.count)
            for m in cluster.members { counts[yTrain[m]] += 1 }
            let top = counts.indices.max { counts[$0] < counts[$1] || (counts[$0] == counts[$1] && $0 > $1) } ?? 0
            return .init(size: cluster.members.count, purity: Double(counts[top]) / Double(max(cluster.members.count, 1)),
                         dominant: names[top], depth: cluster.depth)
        }
        let highPurity = summaries.filter { $0.purity > 0.8 }.count
        let important = importantDimensions(xTrain, clusters: clusters.map(\.members))
        let fewImportant = Double(important) < Double(x.columns) * 0.1
        let linearAccuracy = holdoutAccuracy(xTrain, yTrain, x.rows(test), test.map { labels[$0] }, classCount: names.count)
        let linear = linearAccuracy > 0.85

        let detected = highPurity >= 2 || (fewImportant && linear)
        var types: [String] = []
        if highPurity >= 2 { types.append("clustering_based") }
        if fewImportant { types.append("dimension_specific") }
        if linear { types.append("linear_separable") }
        let confidence: RiskLevel = types.count >= 2 ? .high : types.isEmpty ? .low : .moderate
        let total = summaries.reduce(0) { $0 + $1.size }
        return HBACResult(
            detected: detected, confidence: confidence, risk: detected ? confidence : .low, types: types, clusters: summaries,
            purity: summaries.reduce(0.0) { $0 + $1.purity * Double($1.size) } / Double(max(total, 1)),
            linearAccuracy: linearAccuracy, highPurityClusters: highPurity,
            importantDimensionsRatio: Double(important) / Double(max(x.columns, 1)))
    }

    /// NumPy's `std` (population).
    static func standardDeviation(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return .nan }
        let mean = values.reduce(0, +) / Double(values.count)
        return (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)).squareRoot()
    }

    /// Dimensions whose means differ between the clusters: one-way ANOVA (SciPy's `f_oneway`)
    /// with `p < 0.01`. One cluster alone gives none.
    static func importantDimensions(_ x: Matrix, clusters: [[Int]]) -> Int {
        guard clusters.count > 1 else { return 0 }
        let total = clusters.reduce(0) { $0 + $1.count }
        let k = Double(clusters.count)
        var count = 0
        for j in 0..<x.columns {
            var grand = 0.0
            var means: [Double] = []
            for members in clusters {
                let sum = members.reduce(0.0) { $0 + x[$1, j] }
                grand += sum
                means.append(sum / Double(members.count))
            }
            grand /= Double(total)
            var between = 0.0
            var within = 0.0
            for (c, members) in clusters.enumerated() {
                between += Double(members.count) * (means[c] - grand) * (means[c] - grand)
                for m in members { within += (x[m, j] - means[c]) * (x[m, j] - means[c]) }
            }
            let f = (between / (k - 1)) / (within / (Double(total) - k))
            let p = f.isNaN ? .nan : Distributions.fSurvival(f, k - 1, Double(total) - k)
            if p < 0.01 { count += 1 }
        }
        return count
    }

    /// Accuracy on the held-out rows of a logistic regression (`C = 1`, at most 1000
    /// iterations, as the reference) fit on the training rows.
    static func holdoutAccuracy(_ xTrain: Matrix, _ yTrain: [Int], _ xTest: Matrix, _ yTest: [Int], classCount: Int) -> Double {
        let model = LogisticRegression.fit(xTrain, classes: yTrain, classCount: classCount, maxIterations: 1000)
        return Metrics.accuracy(truth: yTest, predicted: model.predict(xTest))
    }
}

import Foundation
import TensorCore

/// Settings of spectral relevance analysis; the defaults are shortkit-ml 0.1.0's `SpRAyDetector`'s.
public struct SpRAyOptions: Sendable, Equatable {
    /// The fewest and most clusters the eigengap may choose.
    public var minClusters = 2
    /// The most clusters the eigengap may choose.
    public var maxClusters = 10
    /// The reference's Clever-Hans thresholds: a cluster under this share of the data is small,
    public var smallClusterThreshold = 0.05
    /// one at least this pure (label or group) is pure,
    public var purityThreshold = 0.8
    /// a mean focus of this much is highly localized,
    public var focusThreshold = 0.6
    /// and a cosine silhouette of this much separates the clusters.
    public var separationThreshold = 0.3
    /// Mean label purity under this, with separated clusters: separation without label alignment.
    public var alignmentThreshold = 0.6
    /// Seeds k-means.
    public var seed: UInt64 = 42

    /// shortkit-ml's defaults.
    public init() {}
}

/// Spectral relevance analysis (SpRAy, Lapuschkin et al. 2019): clusters of explanation heatmaps
/// that reveal groups of samples the model decides on with one strategy, for instance by a
/// watermark, without knowing where the shortcut is.
///
/// As shortkit-ml's `SpRAyDetector` does with its defaults: each (downsampled) map is min-max
/// scaled, `(h − min) / (max(h − min) + 1e-8)`; the affinity is the cosine similarity of the
/// maps; the number of clusters is the largest gap among the smallest eigenvalues of the
/// normalized Laplacian `I − D^-½ A D^-½` (between the second and the eleventh); the clusters come
/// from scikit-learn's spectral clustering on that affinity: the eigenvectors of the smallest
/// eigenvalues of the Laplacian without self-loops, divided by the square roots of the degrees,
/// signs fixed so each vector's largest entry is positive, then k-means (ours, from 10 seeded
/// starts: the same partition as scikit-learn's when the clusters are clear, numbered by size).
/// A map's focus is `1 − entropy / log(pixels)` of the map as a distribution.
///
/// A cluster is a **candidate shortcut** when it is small (under half the samples), focused
/// (a mean focus above that of all samples) and made of one group (its purity at least 0.8 and at
/// least halfway from that group's share of all samples to 1, so a group that is 90% of the data
/// is not pure by default): a minority of one group whose maps concentrate somewhere the others'
/// do not. The reference's own flags are reported as well.
public struct SpRAyResult: Sendable {
    /// One cluster of maps.
    public struct Cluster: Sendable {
        /// The cluster's number: 0 is the largest (ties to the one whose first sample comes first).
        public let id: Int
        /// The samples in it, by index.
        public let members: [Int]
        /// How many samples it has.
        public var size: Int { members.count }
        /// Its share of all samples.
        public let fraction: Double
        /// The share of its most common group, when groups are known.
        public let groupPurity: Double?
        /// Its most common group.
        public let dominantGroup: String?
        /// The share of its most common label, when labels are known.
        public let labelPurity: Double?
        /// Its most common label.
        public let dominantLabel: Int?
        /// The mean focus of its maps.
        public let focusMean: Double
        /// The standard deviation of its maps' focus.
        public let focusStd: Double
        /// The mean of the members' scaled maps.
        public let meanMap: [Float]
        /// Whether it is a candidate shortcut: small, focused and made of one group.
        public let candidate: Bool
    }

    /// How many clusters the eigengap chose.
    public let clusterCount: Int
    /// Each sample's cluster.
    public let labels: [Int]
    /// The clusters, largest first.
    public let clusters: [Cluster]
    /// The smallest eigenvalues of the normalized Laplacian (up to twelve), ascending.
    public let eigenvalues: [Double]
    /// Each sample's focus.
    public let focus: [Double]
    /// The mean cosine silhouette of the clustering (`nil` with one cluster).
    public let silhouette: Double?
    /// The reference's Clever-Hans flags: `small_high_purity_cluster`, `highly_localized_attention`,
    /// `separation_without_label_alignment`.
    public let referenceFlags: [String]
    /// The ids of the candidate shortcut clusters.
    public var candidates: [Int] { clusters.filter(\.candidate).map(\.id) }

    /// The same result with sample `i` renamed `indices[i]` (after clustering a subset of samples).
    public func remapped(to indices: [Int]) -> SpRAyResult {
        SpRAyResult(
            clusterCount: clusterCount, labels: labels,
            clusters: clusters.map { c in
                Cluster(
                    id: c.id, members: c.members.map { indices[$0] }, fraction: c.fraction, groupPurity: c.groupPurity,
                    dominantGroup: c.dominantGroup, labelPurity: c.labelPurity, dominantLabel: c.dominantLabel, focusMean: c.focusMean,
                    focusStd: c.focusStd, meanMap: c.meanMap, candidate: c.candidate)
            },
            eigenvalues: eigenvalues, focus: focus, silhouette: silhouette, referenceFlags: referenceFlags)
    }
}

/// Spectral relevance analysis of a set of heatmaps; see ``SpRAyResult`` for the method.
public enum SpRAy {
    /// Clusters `count` maps of `height` x `width` values (row-major, one after another).
    /// - Parameters:
    ///   - groups: Each sample's group, for purity; `nil` without groups.
    ///   - labels: Each sample's label, for purity; `nil` where unknown.
    public static func fit(
        maps: [Float], count: Int, height: Int, width: Int, groups: [String]?, labels: [Int?]?, options: SpRAyOptions = SpRAyOptions()
    ) throws -> SpRAyResult {
        let size = height * width
        guard count >= 3, size > 0, maps.count == count * size else {
            throw DetectorError.invalidInput("SpRAy needs at least 3 maps of \(height)x\(width), got \(maps.count) values for \(count)")
        }
        if let groups, groups.count != count { throw DetectorError.invalidInput("SpRAy: \(groups.count) groups for \(count) maps") }
        if let labels, labels.count != count { throw DetectorError.invalidInput("SpRAy: \(labels.count) labels for \(count) maps") }
        let scaled = (0..<count).flatMap { n in minMax(maps[n * size..<(n + 1) * size]) }
        let affinity = cosineSimilarity(scaled, rows: count, columns: size)
        let eigenvalues = try normalizedLaplacianEigenvalues(affinity, n: count)
        let k = clusterCount(eigenvalues, n: count, options: options)
        let embedding = try spectralEmbedding(affinity, n: count, components: k)
        let raw = KMeans.fit(Matrix(rows: count, columns: k, values: embedding), k: k, starts: 10, seed: options.seed)
        let labelsByCluster = renumbered(raw)
        let focus = (0..<count).map { focusScore(scaled[$0 * size..<($0 + 1) * size]) }
        let silhouette = cosineSilhouette(affinity, labels: labelsByCluster, n: count)

        let meanFocus = focus.reduce(0, +) / Double(count)
        var clusters: [SpRAyResult.Cluster] = []
        for id in 0..<(labelsByCluster.max() ?? -1) + 1 {
            let members = labelsByCluster.indices.filter { labelsByCluster[$0] == id }
            guard !members.isEmpty else { continue }
            let groupPurity = groups.flatMap { g in purity(members.map { g[$0] }) }
            let known = labels.map { l in members.compactMap { l[$0] } } ?? []
            let labelPurity = known.isEmpty ? nil : purity(known)
            let memberFocus = members.map { focus[$0] }
            let focusMean = memberFocus.reduce(0, +) / Double(members.count)
            let focusStd = (memberFocus.reduce(0) { $0 + ($1 - focusMean) * ($1 - focusMean) } / Double(members.count)).squareRoot()
            var meanMap = [Float](repeating: 0, count: size)
            for m in members { for p in 0..<size { meanMap[p] += scaled[m * size + p] / Float(members.count) } }
            let fraction = Double(members.count) / Double(count)
            var candidate = false
            if let groups, let (purityValue, dominant) = groupPurity {
                let share = Double(groups.filter { $0 == dominant }.count) / Double(count)
                candidate = fraction < 0.5 && focusMean > meanFocus && purityValue >= max(options.purityThreshold, share + (1 - share) / 2)
            }
            clusters.append(
                SpRAyResult.Cluster(
                    id: id, members: members, fraction: fraction, groupPurity: groupPurity?.0, dominantGroup: groupPurity?.1,
                    labelPurity: labelPurity?.0, dominantLabel: labelPurity?.1, focusMean: focusMean, focusStd: focusStd,
                    meanMap: meanMap, candidate: candidate))
        }
        return SpRAyResult(
            clusterCount: k, labels: labelsByCluster, clusters: clusters, eigenvalues: Array(eigenvalues.prefix(12)), focus: focus,
            silhouette: silhouette, referenceFlags: referenceFlags(clusters, silhouette: silhouette, labelled: labels != nil, options: options))
    }

    /// `(h − min) / (max(h − min) + 1e-8)` in float32, as the reference scales each map.
    static func minMax(_ map: ArraySlice<Float>) -> [Float] {
        let low = map.min() ?? 0
        let shifted = map.map { $0 - low }
        let denominator = (shifted.max() ?? 0) + Float(1e-8)
        return denominator > 0 ? shifted.map { $0 / denominator } : shifted
    }

    /// Cosine similarity of every pair of rows (a row of zeros is similar to nothing).
    static func cosineSimilarity(_ x: [Float], rows: Int, columns: Int) -> [Double] {
        let normalized: [Double] = (0..<rows).flatMap { r -> [Double] in
            let row = x[r * columns..<(r + 1) * columns].map(Double.init)
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return norm > 0 ? row.map { $0 / norm } : row
        }
        let m = Matrix(rows: rows, columns: columns, values: normalized)
        return m.timesTransposed(m).values
    }

    /// Eigenvalues of `I − D^-½ A D^-½`, `D` the row sums of `A` (self-similarity included), ascending.
    static func normalizedLaplacianEigenvalues(_ a: [Double], n: Int) throws -> [Double] {
        let scale = (0..<n).map { i in 1 / max((0..<n).reduce(0.0) { $0 + a[i * n + $1] }, 1e-8).squareRoot() }
        var laplacian = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { laplacian[i * n + j] = (i == j ? 1 : 0) - scale[i] * a[i * n + j] * scale[j] } }
        return try LAPACK.symmetricEigen(laplacian, n: n, vectors: false).values
    }

    /// The reference's eigengap rule: the largest gap between consecutive eigenvalues among the
    /// first `maxClusters + 2`, from the gap after the `minClusters − 1`-th on.
    static func clusterCount(_ eigenvalues: [Double], n: Int, options: SpRAyOptions) -> Int {
        let floor = max(options.minClusters, 2)
        let maxK = min(options.maxClusters + 1, n - 1)
        let values = Array(eigenvalues.prefix(maxK + 1))
        let gaps = zip(values.dropFirst(), values).map { $0 - $1 }
        let start = floor - 1
        guard start < gaps.count else { return floor }
        var best = start
        for i in start..<gaps.count where gaps[i] > gaps[best] { best = i }
        return max(best + 1, options.minClusters)
    }

    /// scikit-learn's `spectral_embedding(affinity, n_components: k, drop_first: false)`, row-major `[n, k]`.
    static func spectralEmbedding(_ a: [Double], n: Int, components k: Int) throws -> [Double] {
        // csgraph's normalized Laplacian ignores self-loops; isolated nodes keep a scale of 1.
        let degrees = (0..<n).map { i in (0..<n).reduce(0.0) { $1 == i ? $0 : $0 + a[i * n + $1] } }
        let root = degrees.map { $0 > 0 ? $0.squareRoot() : 1 }
        var laplacian = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { laplacian[i * n + j] = i == j ? 1 : -a[i * n + j] / (root[i] * root[j]) } }
        let vectors = try LAPACK.symmetricEigen(laplacian, n: n).vectors
        var embedding = [Double](repeating: 0, count: n * k)
        for c in 0..<k {
            var v = (0..<n).map { vectors[c * n + $0] / root[$0] }
            // scikit-learn's deterministic sign: the entry of largest magnitude is positive.
            var largest = 0
            for i in 1..<n where abs(v[i]) > abs(v[largest]) { largest = i }
            if v[largest] < 0 { v = v.map { -$0 } }
            for i in 0..<n { embedding[i * k + c] = v[i] }
        }
        return embedding
    }

    /// Cluster numbers by size, largest first (ties to the cluster whose first sample comes first).
    static func renumbered(_ labels: [Int]) -> [Int] {
        let ids = Set(labels).sorted { a, b in
            let (ca, cb) = (labels.filter { $0 == a }.count, labels.filter { $0 == b }.count)
            return ca != cb ? ca > cb : (labels.firstIndex(of: a) ?? 0) < (labels.firstIndex(of: b) ?? 0)
        }
        let number = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        return labels.map { number[$0] ?? 0 }
    }

    /// `1 − entropy / log(pixels)` of the map as a distribution, clipped to [0, 1].
    static func focusScore(_ map: ArraySlice<Float>) -> Double {
        let values = map.map { Double(max($0, 0)) }
        let total = values.reduce(0, +) + 1e-8
        let entropy = values.reduce(0.0) { sum, v in
            let p = v / total
            return sum - p * log(p + 1e-8)
        }
        let maximum = log(Double(values.count))
        return maximum > 0 ? min(max(1 - entropy / maximum, 0), 1) : 0
    }

    /// The largest share of one value among `values`, and that value (the smallest on ties).
    static func purity<T: Comparable & Hashable>(_ values: [T]) -> (Double, T)? {
        guard !values.isEmpty else { return nil }
        var counts: [T: Int] = [:]
        for v in values { counts[v, default: 0] += 1 }
        guard let top = counts.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }) else { return nil }
        return (Double(top.value) / Double(values.count), top.key)
    }

    /// scikit-learn's `silhouette_score(features, labels, metric: "cosine")` from the similarities.
    static func cosineSilhouette(_ similarity: [Double], labels: [Int], n: Int) -> Double? {
        let ids = Set(labels)
        guard ids.count >= 2, n > ids.count else { return nil }
        var total = 0.0
        for i in 0..<n {
            var sums: [Int: (Double, Int)] = [:]
            for j in 0..<n where j != i {
                let distance = min(max(1 - similarity[i * n + j], 0), 2)
                let entry = sums[labels[j]] ?? (0, 0)
                sums[labels[j]] = (entry.0 + distance, entry.1 + 1)
            }
            guard let own = sums[labels[i]], own.1 > 0 else { continue }  // a cluster of one scores 0
            let a = own.0 / Double(own.1)
            let b = sums.filter { $0.key != labels[i] }.map { $0.value.0 / Double($0.value.1) }.min() ?? 0
            total += max(a, b) > 0 ? (b - a) / max(a, b) : 0
        }
        return total / Double(n)
    }

    /// shortkit-ml's `_evaluate_clever_hans` flags.
    static func referenceFlags(_ clusters: [SpRAyResult.Cluster], silhouette: Double?, labelled: Bool, options: SpRAyOptions) -> [String] {
        var flags: [String] = []
        if clusters.contains(where: { $0.fraction < options.smallClusterThreshold && ($0.labelPurity ?? -1) >= options.purityThreshold }) {
            flags.append("small_high_purity_cluster")
        }
        let maxFocus = clusters.map(\.focusMean).max() ?? 0
        let maxPurity = clusters.map { $0.labelPurity ?? 0 }.max() ?? 0
        if maxFocus >= options.focusThreshold && maxPurity >= options.purityThreshold { flags.append("highly_localized_attention") }
        let purities = clusters.compactMap(\.labelPurity)
        if labelled, let silhouette, silhouette >= options.separationThreshold, !purities.isEmpty,
            purities.reduce(0, +) / Double(purities.count) < options.alignmentThreshold
        {
            flags.append("separation_without_label_alignment")
        }
        return flags
    }
}

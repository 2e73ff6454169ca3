import Foundation
import TensorCore

/// How strongly a method (or all of them) points at a shortcut.
public enum RiskLevel: String, Sendable, Comparable, CaseIterable {
    /// No method points at a shortcut.
    case low
    /// Some evidence.
    case moderate
    /// Strong evidence.
    case high

    /// Low before moderate before high.
    public static func < (a: RiskLevel, b: RiskLevel) -> Bool {
        allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
    }
}

/// The embedding-based detection methods.
public enum DetectionMethod: String, Sendable, CaseIterable, Comparable {
    /// Linear and quadratic probes: can a classifier read the group off the embeddings?
    case probe
    /// Mann-Whitney U per dimension with Benjamini-Hochberg correction.
    case statistical
    /// Hierarchical bias-aware clustering.
    case hbac
    /// Group mean directions and principal subspaces.
    case geometric

    /// In the order the methods are listed.
    public static func < (a: DetectionMethod, b: DetectionMethod) -> Bool {
        allCases.firstIndex(of: a) ?? 0 < allCases.firstIndex(of: b) ?? 0
    }
}

/// Embedding-based shortcut detection: does a layer's embedding encode the protected group?
///
/// The seed's `ShortcutDetector` (shortkit-ml 0.1.0) with the same protocols, defaults and
/// thresholds; see ``ProbeResult``, ``StatisticalResult``, ``HBACResult`` and
/// ``GeometricResult``. Every random choice is seeded, so a fit repeats exactly.
///
/// ```swift
/// let detector = ShortcutDetector(methods: [.hbac, .probe, .statistical])
/// let report = try detector.fit(embeddings: embeddings, groups: groupOfEachRow)
/// if report.probe?.accuracy ?? 0 > 0.7 { print(report.overall.summary) }
/// ```
public struct ShortcutDetector: Sendable {
    /// The methods a fit runs.
    public var methods: [DetectionMethod]
    /// Seeds the holdout splits (drawn as NumPy's `RandomState(seed)` draws them) and k-means.
    public var seed: UInt32
    /// Significance level of the statistical test, before and after the correction.
    public var alpha = 0.05
    /// Settings of the probes.
    public var probe = ProbeOptions()
    /// Settings of the clustering.
    public var hbac = HBACOptions()
    /// Settings of the geometric analysis.
    public var geometric = GeometricOptions()

    /// A detector running `methods`, every random choice seeded by `seed`.
    ///
    /// - Parameters:
    ///   - methods: Which methods run (all four by default; the reference's default omits geometric).
    ///   - seed: The reference's default is 42.
    public init(methods: [DetectionMethod] = DetectionMethod.allCases, seed: UInt32 = 42) {
        self.methods = methods
        self.seed = seed
    }

    /// Runs the methods on `[N, D]` embeddings.
    ///
    /// - Parameters:
    ///   - embeddings: One row per sample, any floating-point type (widened to double).
    ///   - groups: Each row's protected group; at least two distinct groups.
    ///   - labels: Each row's task label, if known. As in the reference's
    ///     `fit(embeddings, labels, group_labels)`, HBAC then clusters by the labels (and asks
    ///     whether the embedding separates the task in simple ways); the other methods always
    ///     read the groups. Without labels, HBAC reads the groups too (the seed's call).
    /// - Throws: ``DetectorError/invalidInput(_:)`` naming the row or count that is wrong.
    public func fit(embeddings: Tensor, groups: [String], labels: [String]? = nil) throws -> DetectionReport {
        guard embeddings.rank == 2, embeddings.dtype.isFloatingPoint else {
            throw DetectorError.invalidInput("embeddings must be a floating-point [N, D] matrix, got \(embeddings.dtype)\(embeddings.shape)")
        }
        let (n, d) = (embeddings.shape[0], embeddings.shape[1])
        let x = Matrix(rows: n, columns: d, values: try embeddings.doubles())
        return try fit(x, groups: groups, labels: labels)
    }

    func fit(_ x: Matrix, groups: [String], labels: [String]?) throws -> DetectionReport {
        let (n, d) = (x.rows, x.columns)
        guard d > 0 else { throw DetectorError.invalidInput("the embeddings have no dimensions") }
        guard n >= 4 else { throw DetectorError.invalidInput("the embeddings have \(n) row(s); at least 4 are needed") }
        guard groups.count == n else {
            throw DetectorError.invalidInput("there are \(n) embedding rows but \(groups.count) group entries")
        }
        if let labels, labels.count != n {
            throw DetectorError.invalidInput("there are \(n) embedding rows but \(labels.count) labels")
        }
        if let bad = x.values.firstIndex(where: { !$0.isFinite }) {
            let row = bad / d
            let kind = x.values[bad].isNaN ? "NaN" : "an infinite value"
            throw DetectorError.invalidInput("embedding row \(row) (counting from 0) holds \(kind) in dimension \(bad % d)")
        }
        let (names, classes) = Self.encode(groups)
        guard names.count >= 2 else {
            throw DetectorError.invalidInput("all \(n) rows are in one group ('\(names.first ?? "")'); at least two groups are needed")
        }

        var report = DetectionReport(n: n, dim: d, groups: names, sampleGroups: classes)
        for method in methods.sorted() where !report.ran(method) {
            do {
                switch method {
                case .probe:
                    report.probe = try Probe.run(x, classes: classes, classCount: names.count, seed: seed, options: probe)
                case .statistical:
                    report.statistical = StatisticalTest.run(x, classes: classes, names: names, alpha: alpha)
                case .hbac:
                    let (labelNames, labelClasses) = labels.map(Self.encode) ?? (names, classes)
                    report.hbac = HBAC.run(x, labels: labelClasses, names: labelNames, seed: seed, options: hbac)
                case .geometric:
                    report.geometric = try Geometric.run(x, classes: classes, names: names, options: geometric)
                }
            } catch let error as DetectorError {
                report.skipped[method] = error.description
            }
        }
        report.projection = try Self.project(x)
        report.overall = OverallAssessment(report)
        return report
    }

    /// Names in sorted order (as `np.unique` orders them) and each entry's index among them.
    static func encode(_ values: [String]) -> (names: [String], classes: [Int]) {
        let names = Set(values).sorted()
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        return (names, values.map { index[$0] ?? 0 })
    }

    /// The rows on their first two principal components (`N × 2`), for plots.
    static func project(_ x: Matrix) throws -> [Double] {
        let centroid = x.columnMoments().mean
        let basis = try Geometric.principalDirections(x, centroid: centroid, count: 2)
        var points = [Double](repeating: 0, count: x.rows * 2)
        for i in 0..<x.rows {
            for c in 0..<basis.rows {
                var total = 0.0
                for j in 0..<x.columns { total += (x[i, j] - centroid[j]) * basis[c, j] }
                points[i * 2 + c] = total
            }
        }
        return points
    }
}

/// Everything one ``ShortcutDetector/fit(embeddings:groups:labels:)`` found.
public struct DetectionReport: Sendable {
    /// Rows (samples) of the embeddings.
    public let n: Int
    /// Dimensions of each embedding.
    public let dim: Int
    /// The groups in sorted order.
    public let groups: [String]
    /// Each row's index into ``groups``.
    public let sampleGroups: [Int]
    /// The probes' result, when they ran.
    public internal(set) var probe: ProbeResult?
    /// The statistical test's result, when it ran.
    public internal(set) var statistical: StatisticalResult?
    /// The clustering's result, when it ran.
    public internal(set) var hbac: HBACResult?
    /// The geometric analysis's result, when it ran.
    public internal(set) var geometric: GeometricResult?
    /// Methods that were asked for but could not run, and why (a group too small, say).
    public internal(set) var skipped: [DetectionMethod: String] = [:]
    /// Each row on the embeddings' first two principal components, `N × 2` row-major.
    public internal(set) var projection: [Double] = []
    /// The verdict over all methods that ran.
    public internal(set) var overall = OverallAssessment(risk: .low, summary: "", indicators: [])

    init(n: Int, dim: Int, groups: [String], sampleGroups: [Int]) {
        self.n = n
        self.dim = dim
        self.groups = groups
        self.sampleGroups = sampleGroups
    }

    func ran(_ method: DetectionMethod) -> Bool {
        switch method {
        case .probe: probe != nil
        case .statistical: statistical != nil
        case .hbac: hbac != nil
        case .geometric: geometric != nil
        }
    }

    /// The plain-language verdict.
    public var summary: String { overall.summary }
}

/// The overall verdict by the reference's default rule (`indicator_count`): each method that
/// flags a shortcut is one indicator; two or more make the risk high, one moderate, none low.
/// A probe flags when either of its probes exceeds the threshold, statistics when any
/// comparison keeps a significant dimension, HBAC when it detects a shortcut, geometry when its
/// risk is moderate or high.
public struct OverallAssessment: Sendable, Equatable {
    /// High with two or more indicators, moderate with one, low with none.
    public let risk: RiskLevel
    /// One plain sentence.
    public let summary: String
    /// The methods that flagged a shortcut.
    public let indicators: [DetectionMethod]

    init(risk: RiskLevel, summary: String, indicators: [DetectionMethod]) {
        self.risk = risk
        self.summary = summary
        self.indicators = indicators
    }

    init(_ report: DetectionReport) {
        var reasons: [(DetectionMethod, String)] = []
        if let p = report.probe, p.detected {
            reasons.append((.probe, p.linearDetected
                ? "a linear probe predicts the group from the embedding (F1 \(fixed(p.value)) against a threshold of \(fixed(p.threshold)))"
                : "a quadratic probe predicts the group from the embedding (F1 \(fixed(p.nonlinear.value)) against a threshold of \(fixed(p.threshold))) where a linear one cannot (\(fixed(p.value)))"))
        }
        if let s = report.statistical, s.detected {
            let flagged = s.comparisons.filter { $0.significant > 0 }
            if s.comparisons.count == 1, let c = flagged.first {
                reasons.append((.statistical, "\(c.significant) of \(report.dim) dimensions differ between \(c.groups[0]) and \(c.groups[1]) (Mann-Whitney, FDR 5%)"))
            } else {
                let most = flagged.map(\.significant).max() ?? 0
                reasons.append((.statistical, "\(flagged.count) of \(s.comparisons.count) group comparisons have dimensions that differ (up to \(most) of \(report.dim), Mann-Whitney, FDR 5%)"))
            }
        }
        if let h = report.hbac, h.detected {
            reasons.append((.hbac, h.highPurityClusters >= 2
                ? "clustering finds \(h.highPurityClusters) of \(h.clusters.count) clusters more than 80% pure (held-out linear accuracy \(fixed(h.linearAccuracy)))"
                : "a linear classifier separates the classes on held-out rows (accuracy \(fixed(h.linearAccuracy))) while few dimensions differ between clusters"))
        }
        if let g = report.geometric, g.risk != .low {
            var parts: [String] = []
            if let top = g.pairs.max(by: { $0.effectSize < $1.effectSize }), top.effectSize >= g.effectThreshold {
                parts.append("the means of \(top.groups[0]) and \(top.groups[1]) lie \(fixed(top.effectSize)) pooled standard deviations apart")
            }
            if let top = g.pairs.max(by: { $0.meanCosine < $1.meanCosine }), top.meanCosine >= g.subspaceCosineThreshold {
                parts.append("the main axes of variation of \(top.groups[0]) and \(top.groups[1]) nearly coincide (mean cosine \(fixed(top.meanCosine)))")
            }
            reasons.append((.geometric, parts.joined(separator: " and ")))
        }
        indicators = reasons.map(\.0)
        risk = reasons.count >= 2 ? .high : reasons.count == 1 ? .moderate : .low
        let groups = report.groups.joined(separator: ", ")
        switch reasons.count {
        case 0:
            summary = "Low shortcut risk: no method found the groups (\(groups)) encoded in the embedding."
        default:
            let parts = reasons.map(\.1)
            let joined = parts.count <= 2 ? parts.joined(separator: " and ") : parts.dropLast().joined(separator: ", ") + ", and " + (parts.last ?? "")
            summary = "\(risk == .high ? "High" : "Moderate") shortcut risk: \(joined)."
        }
    }
}

/// A number with two decimals.
func fixed(_ value: Double, digits: Int = 2) -> String {
    String(format: "%.\(digits)f", value)
}

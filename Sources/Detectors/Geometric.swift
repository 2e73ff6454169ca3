import Foundation
import TensorCore

/// The geometry of the groups in embedding space, as the reference's `GeometricShortcutAnalyzer`:
/// - **bias direction**: the unit vector from one group's mean to another's; the *effect size* is
///   the gap between the groups' mean projections on it over their pooled standard deviation,
///   the *alignment* how closely it follows each group's main axes of variation (the largest
///   `|cos|` with its top principal directions, averaged over the two groups);
/// - **prototype subspaces**: each group's top principal directions (5 by default); two groups'
///   subspaces overlap when the cosines of their principal angles are high.
/// An effect size of at least 0.8, or a mean cosine of at least 0.85, raises the risk to
/// moderate; both, to high. Groups with fewer than 20 samples are left out.
public struct GeometricResult: Sendable, Equatable {
    /// `moderate` when a pair's effect size or mean cosine reaches its threshold, `high` when both do.
    public let risk: RiskLevel
    /// Every pair of analysed groups, in sorted order of the names.
    public let pairs: [Pair]
    /// Groups too small to analyse.
    public let skippedGroups: [String]
    /// The effect size and mean cosine at which a pair counts.
    public let effectThreshold: Double
    /// The mean cosine of principal angles at which subspaces count as overlapping.
    public let subspaceCosineThreshold: Double

    /// The geometry of two groups.
    public struct Pair: Sendable, Equatable {
        /// The two groups.
        public let groups: [String]
        /// The distance between the group means over the pooled standard deviation along it.
        public let effectSize: Double
        /// How well the mean difference aligns with the groups' principal axes (largest absolute cosine).
        public let alignment: Double
        /// The signed gap of the mean projections (second minus first).
        public let projectionGap: Double
        /// Distance between the group means.
        public let directionNorm: Double
        /// The mean cosine of the principal angles between the groups' subspaces.
        public let meanCosine: Double
        /// The smallest principal angle, in degrees.
        public let minAngleDegrees: Double
        /// The largest principal angle, in degrees.
        public let maxAngleDegrees: Double
    }
}

/// Settings of the geometric analysis (the reference's defaults).
public struct GeometricOptions: Sendable {
    /// Principal components per group subspace.
    public var components = 5
    /// Groups with fewer samples are left out.
    public var minGroupSize = 20
    /// The effect size at which a pair counts.
    public var effectThreshold = 0.8
    /// The mean cosine at which a pair's subspaces count as overlapping.
    public var subspaceCosineThreshold = 0.85

    /// The reference's defaults.
    public init() {}
}

enum Geometric {
    static func run(_ x: Matrix, classes: [Int], names: [String], options: GeometricOptions) throws -> GeometricResult {
        var members = [[Int]](repeating: [], count: names.count)
        for (i, c) in classes.enumerated() { members[c].append(i) }
        let analysed = names.indices.filter { members[$0].count >= options.minGroupSize }
        guard analysed.count >= 2 else {
            throw DetectorError.invalidInput(
                "geometric analysis needs two groups of at least \(options.minGroupSize) samples; the groups have \(members.map(\.count))")
        }
        var centroids: [Int: [Double]] = [:]
        var bases: [Int: Matrix] = [:]
        for g in analysed {
            let rows = x.rows(members[g])
            let centroid = rows.columnMoments().mean
            centroids[g] = centroid
            bases[g] = try principalDirections(rows, centroid: centroid, count: options.components)
        }

        var pairs: [GeometricResult.Pair] = []
        for (i, a) in analysed.enumerated() {
            for b in analysed[(i + 1)...] {
                guard let ca = centroids[a], let cb = centroids[b], let va = bases[a], let vb = bases[b] else { continue }
                let direction = zip(cb, ca).map { $0 - $1 }
                let norm = direction.reduce(0) { $0 + $1 * $1 }.squareRoot()
                guard norm >= 1e-9 else { continue }  // identical means: no direction (the reference skips the pair)
                let unit = direction.map { $0 / norm }
                let projectionA = members[a].map { row in (0..<x.columns).reduce(0.0) { $0 + x[row, $1] * unit[$1] } }
                let projectionB = members[b].map { row in (0..<x.columns).reduce(0.0) { $0 + x[row, $1] * unit[$1] } }
                let gap = mean(projectionB) - mean(projectionA)
                let effect = abs(gap) / max(pooledStandardDeviation(projectionA, projectionB), 1e-9)
                let alignment = (largestCosine(unit, va) + largestCosine(unit, vb)) / 2
                let cosines = try principalCosines(va, vb)
                let degrees = { (c: Double) in acos(min(max(c, -1), 1)) * 180 / Double.pi }
                pairs.append(.init(
                    groups: [names[a], names[b]], effectSize: effect, alignment: alignment, projectionGap: gap,
                    directionNorm: norm, meanCosine: cosines.isEmpty ? 0 : mean(cosines),
                    minAngleDegrees: cosines.max().map(degrees) ?? 90, maxAngleDegrees: cosines.min().map(degrees) ?? 90))
            }
        }
        let strongEffect = pairs.contains { $0.effectSize >= options.effectThreshold }
        let overlapping = pairs.contains { $0.meanCosine >= options.subspaceCosineThreshold }
        let risk: RiskLevel = strongEffect && overlapping ? .high : strongEffect || overlapping ? .moderate : .low
        return GeometricResult(
            risk: risk, pairs: pairs, skippedGroups: names.indices.filter { !analysed.contains($0) }.map { names[$0] },
            effectThreshold: options.effectThreshold, subspaceCosineThreshold: options.subspaceCosineThreshold)
    }

    /// The top `count` right singular vectors of the centered rows (rows of the result), through
    /// the eigenvectors of the smaller of the covariance `AᵀA` and the Gram matrix `AAᵀ`.
    static func principalDirections(_ rows: Matrix, centroid: [Double], count: Int) throws -> Matrix {
        var centered = rows
        for i in 0..<rows.rows { for j in 0..<rows.columns { centered[i, j] -= centroid[j] } }
        let kept = min(count, rows.rows, rows.columns)
        var basis = Matrix(zeros: kept, rows.columns)
        if rows.columns <= rows.rows {
            let (_, vectors) = try LAPACK.symmetricEigen(centered.transposedTimes(centered).values, n: rows.columns)
            for c in 0..<kept {
                let source = rows.columns - 1 - c  // eigenvalues ascend
                for j in 0..<rows.columns { basis[c, j] = vectors[source * rows.columns + j] }
            }
        } else {
            // vᵢ = Aᵀuᵢ / σᵢ for the Gram matrix's eigenvectors uᵢ.
            let (values, vectors) = try LAPACK.symmetricEigen(centered.timesTransposed(centered).values, n: rows.rows)
            for c in 0..<kept {
                let source = rows.rows - 1 - c
                let sigma = max(values[source], 0).squareRoot()
                guard sigma > 1e-12 else { continue }
                for i in 0..<rows.rows {
                    let u = vectors[source * rows.rows + i] / sigma
                    for j in 0..<rows.columns { basis[c, j] += u * centered[i, j] }
                }
            }
        }
        return basis
    }

    /// Cosines of the principal angles between the row spaces of two orthonormal bases: the
    /// singular values of `A·Bᵀ`.
    static func principalCosines(_ a: Matrix, _ b: Matrix) throws -> [Double] {
        let m = a.timesTransposed(b)
        guard m.rows > 0, m.columns > 0 else { return [] }
        let small = m.rows <= m.columns ? m.timesTransposed(m) : m.transposedTimes(m)
        let (values, _) = try LAPACK.symmetricEigen(small.values, n: small.rows, vectors: false)
        return values.reversed().map { min(max($0, 0).squareRoot(), 1) }
    }

    static func largestCosine(_ unit: [Double], _ basis: Matrix) -> Double {
        (0..<basis.rows).map { c in abs((0..<basis.columns).reduce(0.0) { $0 + basis[c, $1] * unit[$1] }) }.max() ?? 0
    }

    static func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }

    /// The pooled sample standard deviation (`ddof = 1`), floored at `1e-6` as the reference does.
    static func pooledStandardDeviation(_ x: [Double], _ y: [Double]) -> Double {
        let (n1, n2) = (Double(x.count), Double(y.count))
        func sumOfSquares(_ v: [Double]) -> Double {
            let m = mean(v)
            return v.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        }
        guard x.count >= 2, y.count >= 2 else {
            let all = x + y
            return (sumOfSquares(all) / Double(max(all.count, 1))).squareRoot()
        }
        return max((sumOfSquares(x) + sumOfSquares(y)) / (n1 + n2 - 2), 1e-12).squareRoot()
    }
}

import Foundation
import TensorCore

/// k-means (Lloyd's algorithm from k-means++ seeds, the best of several starts), as the
/// reference's HBAC calls scikit-learn's `KMeans(n_clusters=2, n_init=10)`.
///
/// The seeds come from our own generator, not NumPy's, so on data without a clear cluster
/// structure a split may land elsewhere than scikit-learn's; on data with one, every start finds
/// the same partition.
enum KMeans {
    /// Cluster labels `0..<k` of the rows of `x`.
    static func fit(_ x: Matrix, k: Int, starts: Int = 10, maxIterations: Int = 300, seed: UInt64) -> [Int] {
        guard x.rows > k else { return (0..<x.rows).map { $0 % max(k, 1) } }
        var generator = SeededGenerator(seed: seed)
        let squaredNorms = (0..<x.rows).map { i in (0..<x.columns).reduce(0.0) { $0 + x[i, $1] * x[i, $1] } }
        // scikit-learn's tolerance: 1e-4 times the mean per-feature variance, on the squared shift of the centers.
        let variance = x.columnMoments().std.reduce(0.0) { $0 + $1 * $1 } / Double(max(x.columns, 1))
        let tolerance = 1e-4 * variance
        var best: (inertia: Double, labels: [Int])?
        for _ in 0..<max(starts, 1) {
            var centers = seeds(x, k: k, squaredNorms: squaredNorms, generator: &generator)
            var pass = lloydStep(x, centers: centers, squaredNorms: squaredNorms)
            for _ in 0..<maxIterations {
                let updated = means(pass, previous: centers)
                let shift = zip(updated.values, centers.values).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
                centers = updated
                pass = lloydStep(x, centers: centers, squaredNorms: squaredNorms)
                if shift <= tolerance { break }
            }
            let (labels, inertia) = (pass.labels, pass.inertia)
            if inertia < best?.inertia ?? .infinity { best = (inertia, labels) }
        }
        return best?.labels ?? []
    }

    /// Greedy k-means++: each new center is the best (lowest total squared distance) of
    /// `2 + ⌊ln k⌋` candidates drawn with probability proportional to the squared distance.
    private static func seeds(_ x: Matrix, k: Int, squaredNorms: [Double], generator: inout SeededGenerator) -> Matrix {
        var centers = Matrix(zeros: k, x.columns)
        let first = generator.index(x.rows)
        for j in 0..<x.columns { centers[0, j] = x[first, j] }
        var closest = distances(x, to: first, squaredNorms: squaredNorms)
        let trials = 2 + Int(log(Double(k)))
        for c in 1..<k {
            let potential = closest.reduce(0, +)
            var bestCandidate = 0
            var bestPotential = Double.infinity
            var bestDistances = closest
            for _ in 0..<trials {
                let target = generator.uniform(0...1) * potential
                var running = 0.0
                var candidate = x.rows - 1
                for i in 0..<x.rows {
                    running += closest[i]
                    if running > target { candidate = i; break }
                }
                let d = distances(x, to: candidate, squaredNorms: squaredNorms)
                let merged = zip(closest, d).map { min($0, $1) }
                let total = merged.reduce(0, +)
                if total < bestPotential { (bestCandidate, bestPotential, bestDistances) = (candidate, total, merged) }
            }
            for j in 0..<x.columns { centers[c, j] = x[bestCandidate, j] }
            closest = bestDistances
        }
        return centers
    }

    /// Squared distances of every row to row `row`.
    private static func distances(_ x: Matrix, to row: Int, squaredNorms: [Double]) -> [Double] {
        let d = x.columns
        return x.values.withUnsafeBufferPointer { values in
            guard let base = values.baseAddress else { return [] }
            return (0..<x.rows).map { i in max(squaredNorms[i] - 2 * dot(base + i * d, base + row * d, count: d) + squaredNorms[row], 0) }
        }
    }

    /// One pass over the rows: each row's nearest center, the total squared distance, and the
    /// per-cluster sums and counts the next centers are the means of.
    struct Pass {
        var labels: [Int]
        var inertia: Double
        var sums: [Double]
        var counts: [Int]
    }

    static func lloydStep(_ x: Matrix, centers: Matrix, squaredNorms: [Double]) -> Pass {
        let (k, d, n) = (centers.rows, x.columns, x.rows)
        let centerNorms = (0..<k).map { c in (0..<d).reduce(0.0) { $0 + centers[c, $1] * centers[c, $1] } }
        // Rows in up to eight fixed parts, each with its own sums, added in part order: the threads
        // share the parts, and the result does not depend on how many threads there are.
        let parts = max(1, min(8, n / 512))
        var labels = [Int](repeating: 0, count: n)
        var inertias = [Double](repeating: 0, count: parts)
        var sums = [Double](repeating: 0, count: parts * k * d)
        var counts = [Int](repeating: 0, count: parts * k)
        x.values.withUnsafeBufferPointer { rows in
            centers.values.withUnsafeBufferPointer { center in
                labels.withUnsafeMutableBufferPointer { labels in
                    inertias.withUnsafeMutableBufferPointer { inertias in
                        sums.withUnsafeMutableBufferPointer { sums in
                            counts.withUnsafeMutableBufferPointer { counts in
                                guard let rows = rows.baseAddress, let center = center.baseAddress, let sums = sums.baseAddress else { return }
                                Parallel.forEach(parts, grain: 1) { range in
                                    for part in range {
                                        for i in n * part / parts..<n * (part + 1) / parts {
                                            let row = rows + i * d
                                            var best = 0
                                            var bestDistance = Double.infinity
                                            for c in 0..<k {
                                                let distance = squaredNorms[i] - 2 * dot(row, center + c * d, count: d) + centerNorms[c]
                                                if distance < bestDistance { (best, bestDistance) = (c, distance) }
                                            }
                                            labels[i] = best
                                            inertias[part] += max(bestDistance, 0)
                                            counts[part * k + best] += 1
                                            let sum = sums + (part * k + best) * d
                                            for j in 0..<d { sum[j] += row[j] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var pass = Pass(labels: labels, inertia: inertias.reduce(0, +), sums: Array(sums[0..<k * d]), counts: Array(counts[0..<k]))
        for part in 1..<parts {
            for e in 0..<k * d { pass.sums[e] += sums[part * k * d + e] }
            for c in 0..<k { pass.counts[c] += counts[part * k + c] }
        }
        return pass
    }

    /// The mean of each cluster; an emptied cluster keeps its previous center.
    private static func means(_ pass: Pass, previous: Matrix) -> Matrix {
        var result = previous
        let d = previous.columns
        for c in 0..<previous.rows where pass.counts[c] > 0 {
            for j in 0..<d { result.values[c * d + j] = pass.sums[c * d + j] / Double(pass.counts[c]) }
        }
        return result
    }
}

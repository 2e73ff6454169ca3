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
            var labels = [Int](repeating: 0, count: x.rows)
            var inertia = 0.0
            for _ in 0..<maxIterations {
                (labels, inertia) = assign(x, centers: centers, squaredNorms: squaredNorms)
                let updated = means(x, labels: labels, k: k, previous: centers)
                let shift = zip(updated.values, centers.values).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
                centers = updated
                if shift <= tolerance { break }
            }
            (labels, inertia) = assign(x, centers: centers, squaredNorms: squaredNorms)
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

    private static func distances(_ x: Matrix, to row: Int, squaredNorms: [Double]) -> [Double] {
        let product = x.timesTransposed(x.rows([row]))
        return (0..<x.rows).map { max(squaredNorms[$0] - 2 * product.values[$0] + squaredNorms[row], 0) }
    }

    /// Each row's nearest center and the total squared distance.
    private static func assign(_ x: Matrix, centers: Matrix, squaredNorms: [Double]) -> ([Int], Double) {
        let product = x.timesTransposed(centers)
        let centerNorms = (0..<centers.rows).map { c in (0..<centers.columns).reduce(0.0) { $0 + centers[c, $1] * centers[c, $1] } }
        var labels = [Int](repeating: 0, count: x.rows)
        var inertia = 0.0
        for i in 0..<x.rows {
            var best = 0
            var bestDistance = Double.infinity
            for c in 0..<centers.rows {
                let d = squaredNorms[i] - 2 * product[i, c] + centerNorms[c]
                if d < bestDistance { (best, bestDistance) = (c, d) }
            }
            labels[i] = best
            inertia += max(bestDistance, 0)
        }
        return (labels, inertia)
    }

    /// The mean of each cluster; an emptied cluster keeps its previous center.
    private static func means(_ x: Matrix, labels: [Int], k: Int, previous: Matrix) -> Matrix {
        var sums = Matrix(zeros: k, x.columns)
        var counts = [Int](repeating: 0, count: k)
        for i in 0..<x.rows {
            counts[labels[i]] += 1
            for j in 0..<x.columns { sums[labels[i], j] += x[i, j] }
        }
        for c in 0..<k {
            for j in 0..<x.columns { sums[c, j] = counts[c] > 0 ? sums[c, j] / Double(counts[c]) : previous[c, j] }
        }
        return sums
    }
}

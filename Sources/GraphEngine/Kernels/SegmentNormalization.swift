import Foundation
import TensorCore

/// Mean–variance normalization of a tensor read as contiguous segments, each segment belonging to
/// one statistics group and (optionally) one affine channel: the kernel behind
/// InstanceNormalization, GroupNormalization, MeanVarianceNormalization and training-mode
/// BatchNormalization.
///
/// With μ and σ² a group's mean and population variance and `r` its inverse deviation,
/// `y = γ_c (x − μ) r + β_c`, where `r = 1 / √(σ² + ε)`, or `1 / (σ + ε)` for MVN's formula.
/// Sums run in double precision over each segment in parallel, so a single group spanning a
/// whole image (GroupNorm with one group) still splits over threads.
struct SegmentNormalization {
    /// The number of segments and the elements in each.
    let segments: Int
    let length: Int
    /// The statistics group of each segment.
    let owners: [Int]
    let ownerCount: Int
    /// The affine channel of each segment; `nil` when there is no scale or bias.
    let channels: [Int]?
    let epsilon: Double
    /// MeanVarianceNormalization's `(x − μ) / (σ + ε)`.
    let epsilonOutsideRoot: Bool
    /// Elements per group.
    let ownerSizes: [Double]

    init(
        segments: Int, length: Int, owners: [Int], ownerCount: Int, channels: [Int]?, epsilon: Double,
        epsilonOutsideRoot: Bool = false
    ) {
        self.segments = segments
        self.length = length
        self.owners = owners
        self.ownerCount = ownerCount
        self.channels = channels
        self.epsilon = epsilon
        self.epsilonOutsideRoot = epsilonOutsideRoot
        var sizes = [Double](repeating: 0, count: ownerCount)
        for owner in owners { sizes[owner] += Double(length) }
        ownerSizes = sizes
    }

    /// Per-group mean and population variance.
    struct Statistics {
        var mean: [Double]
        var variance: [Double]
    }

    /// `r`, the factor that scales `x − μ`, of a group with variance `variance`.
    func inverse(_ variance: Double) -> Double {
        epsilonOutsideRoot ? 1 / (variance.squareRoot() + epsilon) : 1 / (variance + epsilon).squareRoot()
    }

    /// `−(2/r)·dr/dσ²`, how the inverse deviation moves with the variance: `r` for `1/√(σ² + ε)`,
    /// `1/σ` for `1/(σ + ε)` (0 for a constant group, whose normalized values are all 0).
    private func varianceCoefficient(_ variance: Double) -> Double {
        guard epsilonOutsideRoot else { return inverse(variance) }
        return variance > 0 ? 1 / variance.squareRoot() : 0
    }

    /// Runs `body(segment)` for every segment, segments split over threads.
    private func forEachSegment(_ body: (Int) -> Void) {
        Parallel.forEach(segments, grain: max(1, 16_384 / max(length, 1))) { range in
            for segment in range { body(segment) }
        }
    }

    /// Per-segment sums of `x − shift[group]` (or their squares), with four running sums so the
    /// adds do not wait on each other.
    @_specialize(where T == Float)
    private func segmentSums<T: FloatKernelScalar>(
        _ x: UnsafePointer<T>, shift: [Double]?, squared: Bool
    ) -> [Double] {
        var sums = [Double](repeating: 0, count: segments)
        sums.withUnsafeMutableBufferPointer { sums in
            forEachSegment { segment in
                let p = x + segment * length
                let m = shift.map { $0[owners[segment]] } ?? 0
                var (s0, s1, s2, s3) = (0.0, 0.0, 0.0, 0.0)
                var i = 0
                while i + 4 <= length {
                    let (a, b, c, d) = (Double(p[i]) - m, Double(p[i + 1]) - m, Double(p[i + 2]) - m, Double(p[i + 3]) - m)
                    if squared {
                        s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d
                    } else {
                        s0 += a; s1 += b; s2 += c; s3 += d
                    }
                    i += 4
                }
                while i < length {
                    let a = Double(p[i]) - m
                    s0 += squared ? a * a : a
                    i += 1
                }
                sums[segment] = (s0 + s1) + (s2 + s3)
            }
        }
        return sums
    }

    /// Each group's mean and variance (two passes: the mean, then squared deviations from it).
    @_specialize(where T == Float)
    func statistics<T: FloatKernelScalar>(_ x: UnsafePointer<T>) -> Statistics {
        var mean = [Double](repeating: 0, count: ownerCount)
        for (segment, sum) in segmentSums(x, shift: nil, squared: false).enumerated() { mean[owners[segment]] += sum }
        for o in 0..<ownerCount { mean[o] /= max(ownerSizes[o], 1) }
        var variance = [Double](repeating: 0, count: ownerCount)
        for (segment, sum) in segmentSums(x, shift: mean, squared: true).enumerated() { variance[owners[segment]] += sum }
        for o in 0..<ownerCount { variance[o] /= max(ownerSizes[o], 1) }
        return Statistics(mean: mean, variance: variance)
    }

    /// Normalizes `x` into `y` with per-channel `scale` and `bias`; returns the statistics used.
    @_specialize(where T == Float)
    @discardableResult
    func forward<T: FloatKernelScalar>(
        _ x: UnsafePointer<T>, into y: UnsafeMutablePointer<T>, scale: [Double]?, bias: [Double]?
    ) -> Statistics {
        let stats = statistics(x)
        let inverses = stats.variance.map(inverse)
        forEachSegment { segment in
            let owner = owners[segment]
            let channel = channels?[segment] ?? 0
            let m = T(stats.mean[owner])
            let a = T((scale?[channel] ?? 1) * inverses[owner])
            let b = T(bias?[channel] ?? 0)
            let (p, q) = (x + segment * length, y + segment * length)
            for i in 0..<length { q[i] = (p[i] - m) * a + b }
        }
        return stats
    }

    /// Gradients for the inputs, per-channel scale and per-channel bias.
    struct Gradients {
        var scale: [Double]
        var bias: [Double]
    }

    /// With x̂ = (x − μ)·r and ĝ = γ·g over each group: `∂x = r (ĝ − mean ĝ) − c (x − μ) r mean(ĝ x̂)`
    /// (`c` from ``varianceCoefficient(_:)``), `∂γ = Σ g x̂`, `∂β = Σ g`. Gradients arriving at the
    /// group means and variances themselves (BatchNormalization's running statistics) add
    /// `∂μ / n + 2 ∂σ² (x − μ) / n`.
    @_specialize(where T == Float)
    func backward<T: FloatKernelScalar>(
        x: UnsafePointer<T>, gradient g: UnsafePointer<T>, scale: [Double]?, into gx: UnsafeMutablePointer<T>?,
        meanGradient: [Double]? = nil, varianceGradient: [Double]? = nil
    ) -> Gradients {
        let stats = statistics(x)
        let inverses = stats.variance.map(inverse)
        // Per segment: Σ g and Σ g (x − μ).
        var sums = [Double](repeating: 0, count: segments)
        var products = [Double](repeating: 0, count: segments)
        sums.withUnsafeMutableBufferPointer { sums in
            products.withUnsafeMutableBufferPointer { products in
                forEachSegment { segment in
                    let m = stats.mean[owners[segment]]
                    let (p, q) = (x + segment * length, g + segment * length)
                    var (s, t) = (0.0, 0.0)
                    for i in 0..<length {
                        let gi = Double(q[i])
                        s += gi
                        t += gi * (Double(p[i]) - m)
                    }
                    sums[segment] = s
                    products[segment] = t
                }
            }
        }
        let channelCount = (channels?.max() ?? -1) + 1
        var result = Gradients(scale: .init(repeating: 0, count: channelCount), bias: .init(repeating: 0, count: channelCount))
        var meanG = [Double](repeating: 0, count: ownerCount)
        var meanGX = [Double](repeating: 0, count: ownerCount)
        for segment in 0..<segments {
            let owner = owners[segment]
            let gamma = channels.map { scale?[$0[segment]] ?? 1 } ?? 1
            if let channels {
                result.bias[channels[segment]] += sums[segment]
                result.scale[channels[segment]] += products[segment] * inverses[owner]
            }
            meanG[owner] += gamma * sums[segment]
            meanGX[owner] += gamma * products[segment] * inverses[owner]
        }
        guard let gx else { return result }
        for o in 0..<ownerCount {
            meanG[o] /= max(ownerSizes[o], 1)
            meanGX[o] /= max(ownerSizes[o], 1)
        }
        forEachSegment { segment in
            let owner = owners[segment]
            let r = inverses[owner]
            let gamma = channels.map { scale?[$0[segment]] ?? 1 } ?? 1
            let n = max(ownerSizes[owner], 1)
            var slope = -varianceCoefficient(stats.variance[owner]) * r * meanGX[owner]
            var offset = -r * meanG[owner]
            if let meanGradient { offset += meanGradient[owner] / n }
            if let varianceGradient { slope += 2 * varianceGradient[owner] / n }
            let (a, b, c, m) = (T(gamma * r), T(slope), T(offset), T(stats.mean[owner]))
            let (p, q, out) = (x + segment * length, g + segment * length, gx + segment * length)
            for i in 0..<length { out[i] = q[i] * a + (p[i] - m) * b + c }
        }
        return result
    }
}

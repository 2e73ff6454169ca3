import Foundation
import TensorCore

/// ROAD's noisy linear imputation (Rong et al. 2022, as pytorch-grad-cam 1.5.7 ships it): each
/// removed pixel becomes the weighted mean of its eight neighbours (1/6 for the four edge
/// neighbours, 1/12 for the corners), which is one sparse linear system over all removed pixels
/// at once, plus Gaussian noise of standard deviation 0.01.
///
/// The system is set up as the reference does, operation for operation: for removed pixel `i`,
/// `A[i][i] = −(1 − Σ weights of neighbours outside the image)`, `A[i][j] = w` for a removed
/// neighbour `j`, and `b[i] −= float32(w · x)` for a kept neighbour of value `x`, neighbours in
/// the reference's order. The reference solves it by SuperLU's sparse LU; `−A` is symmetric
/// positive definite, so we solve it by LAPACK's banded Cholesky: both are direct, double
/// precision solutions that agree far below float32's resolution. The noise comes from
/// `TorchGenerator` in the order `torch.randn_like(res.t())` draws it.
package enum NoisyLinearImputer {
    /// (row offset, column offset, weight), in the reference's order.
    static let neighbours: [(dy: Int, dx: Int, weight: Double)] = [
        (1, 1, 1.0 / 12), (0, 1, 1.0 / 6), (-1, 1, 1.0 / 12), (1, -1, 1.0 / 12),
        (0, -1, 1.0 / 6), (-1, -1, 1.0 / 12), (1, 0, 1.0 / 6), (-1, 0, 1.0 / 6),
    ]

    /// The image with every pixel where `keep` is false imputed.
    /// - Parameters:
    ///   - image: `channels` planes of `height` x `width` float32 values.
    ///   - keep: `height * width` flags; `false` marks the pixels to impute.
    ///   - noise: The noise's standard deviation (the reference's 0.01).
    package static func impute(
        _ image: [Float], channels: Int, height: Int, width: Int, keep: [Bool], noise: Float = 0.01, generator: inout TorchGenerator
    ) throws -> [Float] {
        try impute(image, channels: channels, height: height, width: width, keep: keep, noise: noise, generator: &generator, bandLimit: 1 << 24)
    }

    /// ``impute(_:channels:height:width:keep:noise:generator:)`` with systems whose band exceeds
    /// `bandLimit` values solved by conjugate gradients.
    static func impute(
        _ image: [Float], channels: Int, height: Int, width: Int, keep: [Bool], noise: Float, generator: inout TorchGenerator, bandLimit: Int
    ) throws -> [Float] {
        let size = height * width
        guard channels > 0, size > 0, image.count == channels * size, keep.count == size else {
            throw AuditError.invalid("the imputer needs \(channels) planes of \(height)x\(width) and as many flags")
        }
        let removed = keep.indices.filter { !keep[$0] }
        guard !removed.isEmpty else { return image }
        var variable = [Int](repeating: -1, count: size)
        for (k, pixel) in removed.enumerated() { variable[pixel] = k }

        // -A as a diagonal and off-diagonal couplings (compressed rows); b per channel.
        let count = removed.count
        var system = System(diagonal: [Double](repeating: 1, count: count), rowStart: [0], columns: [], weights: [])
        var b = [Double](repeating: 0, count: count * channels)
        for (k, pixel) in removed.enumerated() {
            let (y, x) = (pixel / width, pixel % width)
            for n in neighbours {
                let (ny, nx) = (y + n.dy, x + n.dx)
                guard ny >= 0, nx >= 0, ny < height, nx < width else {
                    system.diagonal[k] -= n.weight
                    continue
                }
                let other = ny * width + nx
                if keep[other] {
                    for c in 0..<channels { b[k * channels + c] -= Double(Float(n.weight) * image[c * size + other]) }
                } else {
                    system.columns.append(variable[other])
                    system.weights.append(n.weight)
                }
            }
            system.rowStart.append(system.columns.count)
        }
        var result = image
        // A x = b with A = −M: solve M x = −b, all channels at once.
        let solution = try system.solve((0..<channels).flatMap { c in (0..<count).map { -b[$0 * channels + c] } }, columns: channels, bandLimit: bandLimit)
        // torch.randn_like(res.t()): SciPy returns the solution `res` [removed, channels] in
        // column-major order and torch.tensor keeps those strides, so res.t() is a contiguous
        // [channels, removed] tensor, filled channel by channel.
        let draws = generator.normalContiguous(count * channels)
        for (k, pixel) in removed.enumerated() {
            for c in 0..<channels {
                result[c * size + pixel] = Float(solution[c * count + k]) + noise * draws[c * count + k]
            }
        }
        return result
    }

    /// `M = diag(diagonal) − couplings`, the couplings in compressed rows.
    struct System {
        var diagonal: [Double]
        var rowStart: [Int]
        var columns: [Int]
        var weights: [Double]

        /// Solves `M X = R` for `columns` right-hand sides (each contiguous) by a Cholesky
        /// factorization of `M`'s band (removed pixels are numbered row by row, so couplings lie
        /// within about one image row of the diagonal). `M` is symmetric and diagonally dominant,
        /// positive definite unless no pixel is kept anywhere; then the right-hand sides are zero
        /// and so is the solution, as the reference's solver returns. A band of more than
        /// `bandLimit` values (inputs far above 224x224) is solved by conjugate gradients instead.
        func solve(_ rhs: [Double], columns count: Int, bandLimit: Int = 1 << 24) throws -> [Double] {
            guard rhs.contains(where: { $0 != 0 }) else { return rhs }
            let n = diagonal.count
            var bandwidth = 0
            for i in 0..<n { for e in rowStart[i]..<rowStart[i + 1] { bandwidth = max(bandwidth, abs(columns[e] - i)) } }
            guard (bandwidth + 1).multipliedReportingOverflow(by: n).partialValue <= bandLimit else {
                return (0..<count).flatMap { c in conjugateGradients(Array(rhs[c * n..<(c + 1) * n])) }
            }
            var band = [Double](repeating: 0, count: (bandwidth + 1) * n)
            for j in 0..<n {
                band[j * (bandwidth + 1)] = diagonal[j]
                for e in rowStart[j]..<rowStart[j + 1] where columns[e] > j {
                    band[(columns[e] - j) + j * (bandwidth + 1)] = -weights[e]
                }
            }
            return try LAPACK.bandedPositiveDefiniteSolve(band: band, n: n, bandwidth: bandwidth, rhs: rhs, columns: count)
        }

        /// `M x = r` by Jacobi-preconditioned conjugate gradients from 0, to a relative residual of
        /// 1e-12 (agreeing with a direct solve far below float32's resolution).
        func conjugateGradients(_ rhs: [Double]) -> [Double] {
            let n = rhs.count
            var x = [Double](repeating: 0, count: n)
            let norm = rhs.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 0 else { return x }
            let inverse = diagonal.map { $0 > 0 ? 1 / $0 : 1 }
            var r = rhs
            var z = (0..<n).map { r[$0] * inverse[$0] }
            var p = z
            var q = [Double](repeating: 0, count: n)
            var rz = (0..<n).reduce(0) { $0 + r[$1] * z[$1] }
            for _ in 0..<max(10 * n, 100) {
                for i in 0..<n {
                    var sum = diagonal[i] * p[i]
                    for e in rowStart[i]..<rowStart[i + 1] { sum -= weights[e] * p[columns[e]] }
                    q[i] = sum
                }
                let pq = (0..<n).reduce(0) { $0 + p[$1] * q[$1] }
                guard pq > 0 else { break }
                let alpha = rz / pq
                var residual = 0.0
                for i in 0..<n {
                    x[i] += alpha * p[i]
                    r[i] -= alpha * q[i]
                    residual += r[i] * r[i]
                }
                if residual.squareRoot() <= 1e-12 * norm { break }
                var next = 0.0
                for i in 0..<n {
                    z[i] = r[i] * inverse[i]
                    next += r[i] * z[i]
                }
                for i in 0..<n { p[i] = z[i] + next / rz * p[i] }
                rz = next
            }
            return x
        }
    }
}

/// The first principal component projection behind EigenCAM and `eigenSmooth`.
///
/// For a `[channels, positions]` map, the channels are centred over positions and the map is
/// projected on its first right singular vector, giving one value per position (pytorch-grad-
/// cam's `get_2d_projection`). The singular vector's sign is arbitrary; we pick the one that
/// makes the projection's largest-magnitude entry positive.
enum Projection {
    static func firstComponent(_ values: [Double], channels: Int, positions: Int) -> [Double] {
        // Centred data X: positions x channels.
        var x = [Double](repeating: 0, count: positions * channels)
        for c in 0..<channels {
            var mean = 0.0
            for p in 0..<positions { mean += values[c * positions + p].isNaN ? 0 : values[c * positions + p] }
            mean /= Double(max(positions, 1))
            for p in 0..<positions {
                let value = values[c * positions + p].isNaN ? 0 : values[c * positions + p]
                x[p * channels + c] = value - mean
            }
        }
        // X v₁ = σ₁ u₁: take the top eigenvector of the smaller Gram matrix.
        var projection = [Double](repeating: 0, count: positions)
        if positions <= channels {
            var gram = [Double](repeating: 0, count: positions * positions)
            for i in 0..<positions {
                for j in i..<positions {
                    var dot = 0.0
                    for c in 0..<channels { dot += x[i * channels + c] * x[j * channels + c] }
                    gram[i * positions + j] = dot
                    gram[j * positions + i] = dot
                }
            }
            let (value, vector) = topEigenpair(gram, size: positions)
            let sigma = value > 0 ? value.squareRoot() : 0
            for p in 0..<positions { projection[p] = sigma * vector[p] }
        } else {
            var gram = [Double](repeating: 0, count: channels * channels)
            for p in 0..<positions {
                for i in 0..<channels where x[p * channels + i] != 0 {
                    for j in 0..<channels { gram[i * channels + j] += x[p * channels + i] * x[p * channels + j] }
                }
            }
            let (_, vector) = topEigenpair(gram, size: channels)
            for p in 0..<positions {
                var dot = 0.0
                for c in 0..<channels { dot += x[p * channels + c] * vector[c] }
                projection[p] = dot
            }
        }
        if let largest = projection.max(by: { abs($0) < abs($1) }), largest < 0 {
            projection = projection.map { -$0 }
        }
        return projection
    }

    /// The largest eigenvalue of a symmetric matrix and a unit eigenvector, by cyclic Jacobi rotations.
    static func topEigenpair(_ matrix: [Double], size n: Int) -> (Double, [Double]) {
        guard n > 0 else { return (0, []) }
        var a = matrix
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        let scale = a.reduce(0) { $0 + $1 * $1 }.squareRoot()
        for _ in 0..<60 {
            var off = 0.0
            for i in 0..<n { for j in (i + 1)..<max(n, i + 1) { off += a[i * n + j] * a[i * n + j] } }
            if off.squareRoot() <= 1e-15 * max(scale, 1e-300) { break }
            for p in 0..<n {
                for q in (p + 1)..<max(n, p + 1) {
                    let apq = a[p * n + q]
                    guard abs(apq) > 1e-300 else { continue }
                    let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot()
                    let s = t * c
                    for k in 0..<n {
                        let akp = a[k * n + p]
                        let akq = a[k * n + q]
                        a[k * n + p] = c * akp - s * akq
                        a[k * n + q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p * n + k]
                        let aqk = a[q * n + k]
                        a[p * n + k] = c * apk - s * aqk
                        a[q * n + k] = s * apk + c * aqk
                    }
                    for k in 0..<n {
                        let vkp = v[k * n + p]
                        let vkq = v[k * n + q]
                        v[k * n + p] = c * vkp - s * vkq
                        v[k * n + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        var best = 0
        for i in 1..<n where a[i * n + i] > a[best * n + best] { best = i }
        return (a[best * n + best], (0..<n).map { v[$0 * n + best] })
    }
}

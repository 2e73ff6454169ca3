import TensorCore

/// A dense row-major matrix of doubles: samples in rows, features in columns.
///
/// The reference widens embeddings to float64 before any statistic; so do the detectors.
struct Matrix: Sendable {
    let rows: Int
    let columns: Int
    var values: [Double]

    init(rows: Int, columns: Int, values: [Double]) {
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    init(zeros rows: Int, _ columns: Int) {
        self.init(rows: rows, columns: columns, values: [Double](repeating: 0, count: rows * columns))
    }

    subscript(row: Int, column: Int) -> Double {
        get { values[row * columns + column] }
        set { values[row * columns + column] = newValue }
    }

    /// The rows at `indices`, in that order.
    func rows(_ indices: [Int]) -> Matrix {
        var result = [Double](repeating: 0, count: indices.count * columns)
        for (r, i) in indices.enumerated() {
            for j in 0..<columns { result[r * columns + j] = values[i * columns + j] }
        }
        return Matrix(rows: indices.count, columns: columns, values: result)
    }

    /// Per column: the mean and the population standard deviation (`ddof = 0`).
    func columnMoments() -> (mean: [Double], std: [Double]) {
        var mean = [Double](repeating: 0, count: columns)
        for i in 0..<rows { for j in 0..<columns { mean[j] += values[i * columns + j] } }
        for j in 0..<columns { mean[j] /= Double(max(rows, 1)) }
        var variance = [Double](repeating: 0, count: columns)
        for i in 0..<rows {
            for j in 0..<columns {
                let d = values[i * columns + j] - mean[j]
                variance[j] += d * d
            }
        }
        return (mean, variance.map { ($0 / Double(max(rows, 1))).squareRoot() })
    }

    /// `(x − mean) / scale` per column, with scikit-learn's `StandardScaler` convention that a
    /// constant column keeps scale 1.
    func standardized(mean: [Double], std: [Double]) -> Matrix {
        let scale = std.map { $0 == 0 ? 1 : $0 }
        var result = values
        for i in 0..<rows { for j in 0..<columns { result[i * columns + j] = (result[i * columns + j] - mean[j]) / scale[j] } }
        return Matrix(rows: rows, columns: columns, values: result)
    }

    /// The matrix with its columns standardized by its own moments.
    func standardized() -> Matrix {
        let (mean, std) = columnMoments()
        return standardized(mean: mean, std: std)
    }

    /// `self · otherᵀ` (`rows × other.rows`) through the BLAS, or by direct dot products for a
    /// few rows of `other` (a model's weights), where a BLAS product spends its time packing `self`.
    func timesTransposed(_ other: Matrix) -> Matrix {
        var result = Matrix(zeros: rows, other.rows)
        guard rows > 0, other.rows > 0 else { return result }
        if other.rows <= 4 {
            let (k, d) = (other.rows, columns)
            values.withUnsafeBufferPointer { a in
                other.values.withUnsafeBufferPointer { b in
                    result.values.withUnsafeMutableBufferPointer { c in
                        guard let a = a.baseAddress, let b = b.baseAddress, let c = c.baseAddress else { return }
                        Parallel.forEach(rows, grain: max(1, 65_536 / max(d * k, 1))) { part in
                            for i in part { for j in 0..<k { c[i * k + j] = dot(a + i * d, b + j * d, count: d) } }
                        }
                    }
                }
            }
            return result
        }
        values.withUnsafeBufferPointer { a in
            other.values.withUnsafeBufferPointer { b in
                result.values.withUnsafeMutableBufferPointer { c in
                    guard let a = a.baseAddress, let b = b.baseAddress, let c = c.baseAddress else { return }
                    BLAS.dgemm(transposeB: true, m: rows, n: other.rows, k: columns, a: a, lda: max(columns, 1),
                               b: b, ldb: max(columns, 1), c: c, ldc: other.rows)
                }
            }
        }
        return result
    }

    /// `selfᵀ · other` (`columns × other.columns`) through the BLAS, or row by row for a few
    /// columns of `self` (a loss's residuals), split over the columns of `other` so every sum
    /// runs in row order whatever the thread count.
    func transposedTimes(_ other: Matrix) -> Matrix {
        var result = Matrix(zeros: columns, other.columns)
        guard columns > 0, other.columns > 0 else { return result }
        if columns <= 4 {
            let (k, d) = (columns, other.columns)
            values.withUnsafeBufferPointer { a in
                other.values.withUnsafeBufferPointer { b in
                    result.values.withUnsafeMutableBufferPointer { c in
                        guard let a = a.baseAddress, let b = b.baseAddress, let c = c.baseAddress else { return }
                        Parallel.forEach(d, grain: max(16, 65_536 / max(rows * k, 1))) { part in
                            for i in 0..<rows {
                                for r in 0..<k {
                                    let weight = a[i * k + r]
                                    for j in part { c[r * d + j] += weight * b[i * d + j] }
                                }
                            }
                        }
                    }
                }
            }
            return result
        }
        values.withUnsafeBufferPointer { a in
            other.values.withUnsafeBufferPointer { b in
                result.values.withUnsafeMutableBufferPointer { c in
                    guard let a = a.baseAddress, let b = b.baseAddress, let c = c.baseAddress else { return }
                    BLAS.dgemm(transposeA: true, m: columns, n: other.columns, k: rows, a: a, lda: max(columns, 1),
                               b: b, ldb: max(other.columns, 1), c: c, ldc: other.columns)
                }
            }
        }
        return result
    }
}

/// `Σ aᵢbᵢ` over four independent partial sums (one running sum would wait on each add).
@inline(__always) func dot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, count: Int) -> Double {
    var (s0, s1, s2, s3) = (0.0, 0.0, 0.0, 0.0)
    var j = 0
    while j + 4 <= count {
        s0 += a[j] * b[j]
        s1 += a[j + 1] * b[j + 1]
        s2 += a[j + 2] * b[j + 2]
        s3 += a[j + 3] * b[j + 3]
        j += 4
    }
    while j < count {
        s0 += a[j] * b[j]
        j += 1
    }
    return (s0 + s1) + (s2 + s3)
}

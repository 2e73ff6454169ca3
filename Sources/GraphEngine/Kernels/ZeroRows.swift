import TensorCore

// Gradients that are zero in most rows. A transformer read out at its class token (ViT, DeiT)
// passes a gradient to one token in 197: the last block's backward products, normalizations and
// softmax would otherwise spend nearly all their work on rows of zeros. Rules that skip such rows
// give the dense formula's values wherever the skipped rows' other operands are finite.

/// Which operand of a backward product is the gradient arriving at the op's output.
enum GradientOperand {
    /// `g · op(B)`: zero rows of `g` are zero rows of the result.
    case left
    /// `op(A) · g`: zero rows of `g` add nothing to the inner sums.
    case right
}

/// `C = alpha · op(A) · op(B)` (every element of the `m × n` matrix `C`, row stride `ldc`, written)
/// without the all-zero rows of the `gradient` operand, which must be read as stored (not
/// transposed); `false`, with nothing written, when the dense product should run: fewer than
/// half the rows are zero, or the other operand holds an infinity or NaN where a left-out row
/// would have met it (the dense product would give NaN there, not zero). Throws when the memory
/// budget refuses the scratch for the gathered rows.
///
/// On our kernels the result is the dense product's, bit for bit: each element is the chain
/// `c = fma(a, b, c)` over the depth in order from +0, which a row of the result or a zero term
/// left out does not change (`fma(0, b, c) = c` for finite `b`, and `c` is never −0). On the
/// BLAS the products' blocking may round differently.
func gemmSkippingZeroRows(
    _ gradient: GradientOperand, transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
    threaded: Bool
) throws -> Bool {
    switch gradient {
    case .left:
        guard !transposeA, m > 1, k > 0, let live = liveRows(a, rows: m, columns: k, stride: lda),
            transposeB ? allFinite(b, rows: n, columns: k, stride: ldb) : allFinite(b, rows: k, columns: n, stride: ldb)
        else { return false }
        // The dense product's zero rows: +0 sums, scaled by alpha (−0 when alpha is negative).
        try multiplyLiveRows(a, live, rows: m, depth: k, stride: lda, columns: n, zero: 0 * alpha, into: c, ldc: ldc) {
            rows, count, product in
            Float.gemm(
                transposeA: false, transposeB: transposeB, m: count, n: n, k: k, alpha: alpha, a: rows, lda: k, b: b,
                ldb: ldb, beta: 0, c: product, ldc: n, threaded: threaded)
        }
        return true
    case .right:
        guard !transposeB, k > 1, let live = liveRows(b, rows: k, columns: n, stride: ldb) else { return false }
        // Column p of op(A): row p of a transposed A, else a strided column.
        let (along, across) = transposeA ? (1, lda) : (lda, 1)
        var isLive = [Bool](repeating: false, count: k)
        for p in live { isLive[p] = true }
        for p in 0..<k where !isLive[p] {
            guard allFinite(a + p * across, rows: m, columns: 1, stride: along) else { return false }
        }
        let r = live.count
        guard r > 0 else {
            for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
            return true
        }
        try BufferPool.withScratch(Float.self, count: m * r + r * n) { scratch in
            let (columns, rows) = (scratch, scratch + m * r)
            for (j, p) in live.enumerated() {
                for i in 0..<m { columns[i * r + j] = a[p * across + i * along] }
                (rows + j * n).update(from: b + p * ldb, count: n)
            }
            Float.gemm(
                transposeA: false, transposeB: false, m: m, n: n, k: r, alpha: alpha, a: columns, lda: r, b: rows, ldb: n,
                beta: 0, c: c, ldc: ldc, threaded: threaded)
        }
        return true
    }
}

/// `C = A_live · B` in the `live` rows of `C` (`m × n`, row stride `ldc`) and `zero` in the others:
/// the `live` rows of `A` (`m × k`, row stride `lda`) are gathered into a `count × k` block and
/// `product(block, count, out)` writes their `count × n` product (row stride `n`) to `out`.
func multiplyLiveRows(
    _ a: UnsafePointer<Float>, _ live: [Int], rows m: Int, depth k: Int, stride lda: Int, columns n: Int, zero: Float,
    into c: UnsafeMutablePointer<Float>, ldc: Int,
    _ product: (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void
) throws {
    let r = live.count
    try BufferPool.withScratch(Float.self, count: r * k + r * n) { scratch in
        let (rows, result) = (scratch, scratch + r * k)
        for (j, i) in live.enumerated() { (rows + j * k).update(from: a + i * lda, count: k) }
        if r > 0 { product(rows, r, result) }
        var next = 0
        for i in 0..<m {
            if next < r, live[next] == i {
                (c + i * ldc).update(from: result + next * n, count: n)
                next += 1
            } else {
                (c + i * ldc).update(repeating: zero, count: n)
            }
        }
    }
}

/// The rows of a `rows × columns` matrix (row stride `stride`) holding a nonzero value, in
/// order; `nil` when more than half of them do. A nonzero row usually shows it in its first
/// lanes, so a dense matrix costs a glance per row.
func liveRows(_ x: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int) -> [Int]? {
    var live: [Int] = []
    for row in 0..<rows where !isZero(x + row * stride, count: columns) {
        live.append(row)
        if live.count * 2 > rows { return nil }
    }
    return live
}

/// Whether all `count` values from `x` are zero (either sign); stops at the first lanes that are not.
func isZero<T: FloatKernelScalar>(_ x: UnsafePointer<T>, count: Int) -> Bool {
    guard T.self == Float.self else { return (0..<count).allSatisfy { x[$0] == 0 } }
    return isZero(UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), count: count)
}

/// Whether all `count` values from `x` are finite.
func allFinite<T: FloatKernelScalar>(_ x: UnsafePointer<T>, count: Int) -> Bool {
    guard T.self == Float.self else { return (0..<count).allSatisfy { x[$0].isFinite } }
    return allFinite(UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), rows: 1, columns: count, stride: count)
}

/// ``isZero(_:count:)`` on float32 lanes.
func isZero(_ x: UnsafePointer<Float>, count: Int) -> Bool {
    var i = 0
    while i + 16 <= count {
        if any(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) .!= 0) { return false }
        i += 16
    }
    while i < count {
        if x[i] != 0 { return false }
        i += 1
    }
    return true
}

/// Whether every element of a `rows × columns` matrix (row stride `stride`) is finite.
func allFinite(_ x: UnsafePointer<Float>, rows: Int, columns: Int, stride: Int) -> Bool {
    // x · 0 is ±0 for finite x and NaN otherwise; the sums stay 0 exactly when all are finite.
    var lanes = SIMD16<Float>.zero
    var rest: Float = 0
    let whole = columns / 16 * 16
    for row in 0..<rows {
        let p = x + row * stride
        for i in Swift.stride(from: 0, to: whole, by: 16) { lanes += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self) * 0 }
        for i in whole..<columns { rest += p[i] * 0 }
    }
    return lanes.sum() + rest == 0
}

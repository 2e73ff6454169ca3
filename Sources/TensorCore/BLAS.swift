#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// Matrix products through the platform's tuned BLAS: OpenBLAS on Linux, Accelerate on Apple.
///
/// All matrices are row-major. This is the one place that calls BLAS, so a different backend
/// only touches this file. Products are split over ``Parallel``'s threads here, by rows or
/// columns of `C`, with the BLAS single-threaded inside each part.
package enum BLAS {
    /// OpenBLAS runs in the calling thread; the splitting is ours.
    private static let singleThreaded: Void = {
        #if !canImport(Accelerate)
        openblas_set_num_threads(1)
        #endif
    }()

    /// What ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:threaded:)`` and its
    /// double twin share: the empty and `k == 0` cases, and the split into parts, each handed to
    /// `call(rows, columns, a, b, c)` with its operands offset to the part.
    private static func product<T: FloatingPoint>(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<T>, lda: Int,
        b: UnsafePointer<T>, ldb: Int, beta: T, c: UnsafeMutablePointer<T>, ldc: Int, threaded: Bool,
        _ call: (Int32, Int32, UnsafePointer<T>, UnsafePointer<T>, UnsafeMutablePointer<T>) -> Void
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {  // BLAS leaves C untouched when k == 0 only for beta == 1; make it exact
            for row in 0..<m { for col in 0..<n { c[row * ldc + col] *= beta } }
            return
        }
        split(m: m, n: n, k: k, threaded: threaded) { rows, columns in
            call(
                blasInt(rows.count), blasInt(columns.count), a + rows.lowerBound * (transposeA ? 1 : lda),
                b + columns.lowerBound * (transposeB ? ldb : 1), c + rows.lowerBound * ldc + columns.lowerBound)
        }
    }

    /// Runs `part(rows, columns)` on disjoint parts of an `m × n` result: by columns when they
    /// outnumber the rows (each part then re-reads all of `op(A)`, the smaller operand), else by rows.
    private static func split(m: Int, n: Int, k: Int, threaded: Bool, _ part: (Range<Int>, Range<Int>) -> Void) {
        _ = singleThreaded
        guard threaded else { return part(0..<m, 0..<n) }
        // Below ~1 MFLOP per thread the hand-off costs more than it saves.
        let grain = max(1, (1 << 19) / max(k, 1))
        if n >= m {
            Parallel.forEach(n, grain: max(16, grain / max(m, 1))) { part(0..<m, $0) }
        } else {
            Parallel.forEach(m, grain: max(16, grain / max(n, 1))) { part($0, 0..<n) }
        }
    }

    /// `C = alpha * op(A) * op(B) + beta * C`, with `op(X)` = `X` or `Xᵀ`.
    ///
    /// - Parameters:
    ///   - m: Rows of `op(A)` and `C`.
    ///   - n: Columns of `op(B)` and `C`.
    ///   - k: Columns of `op(A)`, rows of `op(B)`.
    ///   - lda, ldb, ldc: Row strides of the stored matrices, in elements.
    ///   - threaded: Split over ``Parallel``'s threads; `false` inside a part of a split loop.
    package static func sgemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, threaded: Bool = true
    ) {
        product(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta,
            c: c, ldc: ldc, threaded: threaded
        ) { m, n, a, b, c in
            cblas_sgemm(
                CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, m, n,
                blasInt(k), alpha, a, blasInt(lda), b, blasInt(ldb), beta, c, blasInt(ldc))
        }
    }

    /// Double-precision twin of ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``.
    package static func dgemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Double = 1,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int, threaded: Bool = true
    ) {
        product(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta,
            c: c, ldc: ldc, threaded: threaded
        ) { m, n, a, b, c in
            cblas_dgemm(
                CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, m, n,
                blasInt(k), alpha, a, blasInt(lda), b, blasInt(ldb), beta, c, blasInt(ldc))
        }
    }

    /// The CPU core the BLAS chose its kernels for (`openblas_get_corename()`), or `nil` where the
    /// library does not say (Accelerate).
    package static let coreName: String? = {
        #if canImport(Accelerate)
        return nil
        #else
        return openblas_get_corename().map { String(cString: $0) }
        #endif
    }()

    /// Whether the BLAS runs a generic core on a CPU that has AVX2: OpenBLAS did not recognize the
    /// CPU (Debian's 0.3.21 falls back to its SSE3 "Prescott" kernels on Sapphire Rapids) and its
    /// products run at a fraction of the machine's speed. On the AVX2 and AVX-512 levels every
    /// float32 product runs on our kernels but matrix-vector products against weights too large to
    /// keep packed, and those too where this is true; only the forced portable level (and float64)
    /// still reaches such a BLAS.
    package static let misidentifiesCPU: Bool = {
        guard let core = coreName?.lowercased(), KernelLevel.avx2.isSupported else { return false }
        return ["prescott", "generic", "core2", "nehalem", "katmai", "coppermine", "northwood", "banias"].contains(core)
    }()

    /// Sets the threads matrix products (and every other kernel) use: ``Parallel/setWidth(_:)``.
    package static func setThreads(_ count: Int) { Parallel.setWidth(count) }

    /// BLAS takes 32-bit sizes; callers split work that would not fit (a single activation never does).
    @inline(__always) private static func blasInt(_ value: Int) -> Int32 { Int32(truncatingIfNeeded: value) }
}

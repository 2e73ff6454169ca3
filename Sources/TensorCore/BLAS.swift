#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// Matrix products through the platform's tuned BLAS: OpenBLAS on Linux, Accelerate on Apple.
///
/// All matrices are row-major. This is the one place that calls BLAS, so a different backend
/// only touches this file.
public enum BLAS {
    /// `C = alpha * op(A) * op(B) + beta * C`, with `op(X)` = `X` or `Xᵀ`.
    ///
    /// - Parameters:
    ///   - m: Rows of `op(A)` and `C`.
    ///   - n: Columns of `op(B)` and `C`.
    ///   - k: Columns of `op(A)`, rows of `op(B)`.
    ///   - lda, ldb, ldc: Row strides of the stored matrices, in elements.
    public static func sgemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {  // BLAS leaves C untouched when k == 0 only for beta == 1; make it exact
            for row in 0..<m { for col in 0..<n { c[row * ldc + col] *= beta } }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasInt(m), blasInt(n), blasInt(k), alpha, a, blasInt(lda), b, blasInt(ldb), beta, c, blasInt(ldc))
    }

    /// Double-precision twin of ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``.
    public static func dgemm(
        transposeA: Bool = false, transposeB: Bool = false,
        m: Int, n: Int, k: Int, alpha: Double = 1,
        a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for row in 0..<m { for col in 0..<n { c[row * ldc + col] *= beta } }
            return
        }
        cblas_dgemm(
            CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
            blasInt(m), blasInt(n), blasInt(k), alpha, a, blasInt(lda), b, blasInt(ldb), beta, c, blasInt(ldc))
    }

    /// Limits the threads BLAS uses (OpenBLAS); Accelerate manages its own threads.
    public static func setThreads(_ count: Int) {
        #if !canImport(Accelerate)
        openblas_set_num_threads(Int32(max(count, 1)))
        #endif
    }

    /// BLAS takes 32-bit sizes; callers split work that would not fit (a single activation never does).
    @inline(__always) private static func blasInt(_ value: Int) -> Int32 { Int32(truncatingIfNeeded: value) }
}

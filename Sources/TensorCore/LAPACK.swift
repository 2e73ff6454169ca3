#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// Dense linear algebra beyond products, through the LAPACK in the linked BLAS (OpenBLAS on
/// Linux, Accelerate on Apple).
package enum LAPACK {
    /// Eigenvalues and eigenvectors of a symmetric `n × n` matrix (LAPACK's divide-and-conquer
    /// `dsyevd`).
    ///
    /// - Parameters:
    ///   - matrix: Row-major; only its lower triangle is read (symmetry makes row- and
    ///     column-major the same matrix).
    ///   - vectors: Whether to compute the eigenvectors; without them the workspace is `O(n)`
    ///     instead of `2n²` values (64 MB for n = 2,000).
    /// - Returns: Eigenvalues in ascending order and, row `i` of `vectors` (`n × n`, row-major),
    ///   the unit eigenvector of `values[i]` (empty when not asked for).
    package static func symmetricEigen(_ matrix: [Double], n: Int, vectors: Bool = true) throws -> (values: [Double], vectors: [Double]) {
        guard n > 0 else { return ([], []) }
        guard matrix.count == n * n, n < Int(Int32.max / 4) else {
            throw TensorError.linearAlgebra("symmetricEigen needs an n × n matrix, got \(matrix.count) values for n = \(n)")
        }
        // Column-major in, column-major out: column i of the result is eigenvector i, which is
        // row i of the returned row-major buffer.
        var a = matrix
        var values = [Double](repeating: 0, count: n)
        var size = Int32(n)
        var lda = Int32(n)
        var info: Int32 = 0
        var jobz = CChar(UInt8(ascii: vectors ? "V" : "N"))
        var uplo = CChar(UInt8(ascii: "U"))  // upper of the column-major view = lower of ours
        // Workspace query first, then the real call.
        var lwork: Int32 = -1
        var liwork: Int32 = -1
        var workSize = 0.0
        var iworkSize: Int32 = 0
        call(&jobz, &uplo, &size, &a, &lda, &values, &workSize, &lwork, &iworkSize, &liwork, &info)
        guard info == 0 else { throw TensorError.linearAlgebra("dsyevd workspace query failed (info \(info))") }
        lwork = Int32(workSize.rounded(.up))
        liwork = iworkSize
        var work = [Double](repeating: 0, count: Int(max(lwork, 1)))
        var iwork = [Int32](repeating: 0, count: Int(max(liwork, 1)))
        call(&jobz, &uplo, &size, &a, &lda, &values, &work, &lwork, &iwork, &liwork, &info)
        guard info == 0 else {
            throw TensorError.linearAlgebra("dsyevd did not converge (info \(info)); is the matrix finite?")
        }
        return (values, vectors ? a : [])
    }

    /// Solves `A X = B` for a symmetric positive definite band matrix `A` with `bandwidth`
    /// diagonals below the main one (LAPACK's Cholesky band solver `dpbsv`).
    ///
    /// - Parameters:
    ///   - band: The lower band, `(bandwidth + 1) × n`, column-major as LAPACK stores it:
    ///     `band[(i − j) + j · (bandwidth + 1)] = A[i][j]` for `j ≤ i ≤ j + bandwidth`.
    ///   - rhs: `B`, `n × columns`, column-major (each right-hand side contiguous).
    /// - Returns: `X`, laid out as `rhs`.
    package static func bandedPositiveDefiniteSolve(band: [Double], n: Int, bandwidth: Int, rhs: [Double], columns: Int) throws -> [Double] {
        guard n > 0, columns > 0 else { return rhs }
        guard bandwidth >= 0, bandwidth < n, band.count == (bandwidth + 1) * n, rhs.count == n * columns,
            n < Int(Int32.max), (bandwidth + 1) * n < Int(Int32.max), n * columns < Int(Int32.max)
        else {
            throw TensorError.linearAlgebra("bandedPositiveDefiniteSolve: a band of \(band.count) values and \(rhs.count) right-hand values do not fit n = \(n), bandwidth \(bandwidth)")
        }
        var ab = band
        var x = rhs
        var size = Int32(n)
        var kd = Int32(bandwidth)
        var nrhs = Int32(columns)
        var ldab = Int32(bandwidth + 1)
        var ldb = Int32(n)
        var info: Int32 = 0
        var uplo = CChar(UInt8(ascii: "L"))
        #if canImport(Accelerate)
        _ = dpbsv_(&uplo, &size, &kd, &nrhs, &ab, &ldab, &x, &ldb, &info)
        #else
        dpbsv_(&uplo, &size, &kd, &nrhs, &ab, &ldab, &x, &ldb, &info, 1)
        #endif
        guard info == 0 else {
            throw TensorError.linearAlgebra(
                info > 0 ? "dpbsv: the matrix is not positive definite (leading minor \(info))" : "dpbsv: argument \(-info) is invalid")
        }
        return x
    }

    private static func call(
        _ jobz: UnsafeMutablePointer<CChar>, _ uplo: UnsafeMutablePointer<CChar>, _ n: UnsafeMutablePointer<Int32>,
        _ a: UnsafeMutablePointer<Double>, _ lda: UnsafeMutablePointer<Int32>, _ w: UnsafeMutablePointer<Double>,
        _ work: UnsafeMutablePointer<Double>, _ lwork: UnsafeMutablePointer<Int32>, _ iwork: UnsafeMutablePointer<Int32>,
        _ liwork: UnsafeMutablePointer<Int32>, _ info: UnsafeMutablePointer<Int32>
    ) {
        #if canImport(Accelerate)
        _ = dsyevd_(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info)
        #else
        dsyevd_(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info, 1, 1)
        #endif
    }
}

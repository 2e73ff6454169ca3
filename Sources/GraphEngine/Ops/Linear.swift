import ONNXModel
import TensorCore

// Matrix products: Gemm and MatMul, both through BLAS.

extension OpRegistry {
    mutating func registerLinear() {
        register("Gemm") { context in
            Gemm(
                alpha: try context.attribute("alpha", default: 1), beta: try context.attribute("beta", default: 1),
                transA: try context.attribute("transA", default: 0) != 0,
                transB: try context.attribute("transB", default: 0) != 0)
        }
        register("MatMul") { _ in MatMul() }
    }
}

/// A floating-point type with a BLAS matrix product.
protocol GEMMScalar: FloatKernelScalar {
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int, beta: Self,
        c: UnsafeMutablePointer<Self>, ldc: Int)
}

extension Float: GEMMScalar {
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        BLAS.sgemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
            ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

extension Double: GEMMScalar {
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int, beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        BLAS.dgemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
            ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}

/// Dispatches `body` on the BLAS type of `dtype`.
func withGEMMType<R>(_ dtype: DType, _ op: String, _ body: (any GEMMScalar.Type) throws -> R) throws -> R {
    switch dtype {
    case .float32: return try body(Float.self)
    case .float64: return try body(Double.self)
    default: throw OpError("\(op) needs float32 or float64 input, got \(dtype)")
    }
}

/// `Gemm`: `Y = alpha * op(A) * op(B) + beta * C`, with C broadcast to `[M, N]`.
struct Gemm: Operator {
    let alpha: Float
    let beta: Float
    let transA: Bool
    let transB: Bool

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        guard a.rank == 2, b.rank == 2 else { throw OpError("Gemm needs 2-D A and B, got \(a.shape) and \(b.shape)") }
        let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb, a.dtype == b.dtype else {
            throw OpError("cannot multiply \(a.dtype)\(a.shape)\(transA ? "ᵀ" : "") by \(b.dtype)\(b.shape)\(transB ? "ᵀ" : "")")
        }
        var output = try Tensor(zeros: a.dtype, shape: [m, n])
        var beta = self.beta
        if let c = inputs[2], beta != 0 {
            guard (try? Shape.broadcast(c.shape, [m, n])) == [m, n], c.dtype == a.dtype else {
                throw OpError("C of shape \(c.shape) does not broadcast to [\(m), \(n)]")
            }
            output = try stridedCopy(c, shape: [m, n], strides: Shape.broadcastStrides(c.shape, to: [m, n]))
        } else {
            beta = 0
        }
        func run<T: GEMMScalar>(_ type: T.Type) {
            withExtendedLifetime((a, b)) {
                T.gemm(
                    transposeA: transA, transposeB: transB, m: m, n: n, k: k, alpha: T(alpha),
                    a: a.storage.base.assumingMemoryBound(to: T.self), lda: a.shape[1],
                    b: b.storage.base.assumingMemoryBound(to: T.self), ldb: b.shape[1], beta: T(beta),
                    c: output.storage.base.assumingMemoryBound(to: T.self), ldc: n)
            }
        }
        try withGEMMType(a.dtype, "Gemm") { run($0) }
        return [output]
    }
}

/// `MatMul`: NumPy `matmul`, with batch axes broadcast and 1-D operands promoted and dropped.
struct MatMul: Operator {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        var a = try inputs.required(0)
        var b = try inputs.required(1)
        guard a.dtype == b.dtype else { throw OpError("MatMul inputs have different types: \(a.dtype) and \(b.dtype)") }
        guard a.rank >= 1, b.rank >= 1 else { throw OpError("MatMul inputs must have rank 1 or more") }
        let vectorA = a.rank == 1
        let vectorB = b.rank == 1
        if vectorA { a = try a.reshaped([1, a.shape[0]]) }
        if vectorB { b = try b.reshaped([b.shape[0], 1]) }
        let (m, k) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (kb, n) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        guard k == kb else { throw OpError("cannot multiply \(a.shape) by \(b.shape): inner extents \(k) and \(kb) differ") }
        let batchA = Array(a.shape.dropLast(2))
        let batchB = Array(b.shape.dropLast(2))
        let batch = try Shape.broadcast(batchA, batchB)
        var shape = batch + [m, n]
        let output = try Tensor(zeros: a.dtype, shape: shape)
        let batchCount = batch.reduce(1, *)

        func run<T: GEMMScalar>(_ type: T.Type) {
            let pa = a.storage.base.assumingMemoryBound(to: T.self)
            let pb = b.storage.base.assumingMemoryBound(to: T.self)
            let pc = output.storage.base.assumingMemoryBound(to: T.self)
            if batchB.reduce(1, *) == 1 && batchA == batch {
                // Shared right operand (a Linear layer): fold A's batch axes into its rows.
                T.gemm(
                    transposeA: false, transposeB: false, m: batchCount * m, n: n, k: k, alpha: 1, a: pa, lda: k,
                    b: pb, ldb: n, beta: 0, c: pc, ldc: n)
                return
            }
            let stridesA = Shape.broadcastStrides(batchA, to: batch)
            let stridesB = Shape.broadcastStrides(batchB, to: batch)
            let batchStrides = Shape.strides(batch)
            for index in 0..<batchCount {
                var offsetA = 0
                var offsetB = 0
                for axis in 0..<batch.count {
                    let coordinate = (index / batchStrides[axis]) % batch[axis]
                    offsetA += coordinate * stridesA[axis]
                    offsetB += coordinate * stridesB[axis]
                }
                T.gemm(
                    transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: pa + offsetA * m * k, lda: k,
                    b: pb + offsetB * k * n, ldb: n, beta: 0, c: pc + index * m * n, ldc: n)
            }
        }
        try withExtendedLifetime((a, b)) { try withGEMMType(a.dtype, "MatMul") { run($0) } }
        if vectorA { shape.remove(at: shape.count - 2) }
        if vectorB { shape.removeLast() }
        return [try output.reshaped(shape)]
    }
}

import ONNXModel
import TensorCore

// Matrix products: Gemm and MatMul, through the kernel table's products (float32 on x86) or BLAS.

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

/// A floating-point type with a matrix product.
protocol GEMMScalar: FloatKernelScalar {
    /// `C = alpha op(A) op(B) + beta C` through the kernel table's products where it has them
    /// (float32 on the AVX2 and AVX-512 levels), else ``BLAS``; `threaded: false` inside a parallel loop.
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int, beta: Self,
        c: UnsafeMutablePointer<Self>, ldc: Int, threaded: Bool)
}

extension GEMMScalar {
    /// The product split over the kernel threads.
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Self,
        a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int, beta: Self,
        c: UnsafeMutablePointer<Self>, ldc: Int
    ) {
        gemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
            ldb: ldb, beta: beta, c: c, ldc: ldc, threaded: true)
    }
}

extension Float: GEMMScalar {
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threaded: Bool
    ) {
        // A few rows against a large transposed B (VGG-16's classifier at a small batch, whose
        // weights are too large to keep packed) read B once in the BLAS's matrix-vector kernels, where
        // ours would pack B on every call; only where the BLAS runs kernels made for this CPU.
        let matrixVector = transposeB && m < 16 && k * n > 1 << 24 && !BLAS.misidentifiesCPU
        if let gemm = Kernels.current.gemm, !matrixVector {
            return gemm.sgemm(
                transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
                ldb: ldb, beta: beta, c: c, ldc: ldc, threaded: threaded)
        }
        BLAS.sgemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
            ldb: ldb, beta: beta, c: c, ldc: ldc, threaded: threaded)
    }
}

extension Double: GEMMScalar {
    static func gemm(
        transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int, beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int, threaded: Bool
    ) {
        BLAS.dgemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
            ldb: ldb, beta: beta, c: c, ldc: ldc, threaded: threaded)
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
    /// A constant `B` as the kernel table's packed right operand.
    let packedCache = WeightCache<PackedMatrix>()

    func multiplyAdds(_ inputs: OpInputs) throws -> Int? {
        let (a, b) = (try inputs.required(0).shape, try inputs.required(1).shape)
        guard a.count == 2, b.count == 2 else { return nil }
        return WorkBudget.product(a[0], a[1], transB ? b[0] : b[1])
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        guard a.rank == 2, b.rank == 2 else { throw OpError("Gemm needs 2-D A and B, got \(a.shape) and \(b.shape)") }
        let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kb, a.dtype == b.dtype else {
            throw OpError("cannot multiply \(a.dtype)\(a.shape)\(transA ? "ᵀ" : "") by \(b.dtype)\(b.shape)\(transB ? "ᵀ" : "")")
        }
        let c = beta == 0 ? nil : inputs[2]
        if let c {
            guard (try? Shape.broadcast(c.shape, [m, n])) == [m, n], c.dtype == a.dtype else {
                throw OpError("C of shape \(c.shape) does not broadcast to [\(m), \(n)]")
            }
        }
        let beta = c == nil ? 0 : self.beta
        let packed =
            !transA && alpha == 1 && (beta == 0 || beta == 1)
            ? try packedRight(b, inputs.isConstant(1), packedCache, rows: m, depth: k, columns: n, transposed: transB) : nil
        // The packed product adds a bias row (`[N]` or `[1, N]`, a linear layer's) in its stores;
        // any other C is copied out first and the product accumulates onto it.
        let biasRow = packed == nil ? nil : c.flatMap { $0.count == n && $0.shape.last == n ? $0 : nil }
        let output: Tensor
        if let c, biasRow == nil {
            output = try stridedCopy(c, shape: [m, n], strides: Shape.broadcastStrides(c.shape, to: [m, n]))
        } else if packed != nil {
            output = try Tensor(uninitialized: a.dtype, shape: [m, n])  // the product writes every element
        } else {
            output = try Tensor(zeros: a.dtype, shape: [m, n])
        }
        if let packed {
            withExtendedLifetime((a, biasRow)) {
                packed.gemm.multiply(
                    m: m, n: n, k: k, a: .rowMajor(a.unsafeElements(as: Float.self).address(count: m * k), stride: k),
                    b: .packed(packed.matrix), c: output.unsafeMutableElements(as: Float.self).address(count: m * n), ldc: n,
                    accumulate: c != nil && biasRow == nil, columnBias: biasRow?.unsafeElements(as: Float.self).address(count: n))
            }
            return [output]
        }
        func run<T: GEMMScalar>(_ type: T.Type) {
            withExtendedLifetime((a, b)) {
                T.gemm(
                    transposeA: transA, transposeB: transB, m: m, n: n, k: k, alpha: T(alpha),
                    a: a.unsafeElements(as: T.self).address(), lda: a.shape[1],
                    b: b.unsafeElements(as: T.self).address(), ldb: b.shape[1], beta: T(beta),
                    c: output.unsafeMutableElements(as: T.self).address(count: m * n), ldc: n)
            }
        }
        try withGEMMType(a.dtype, "Gemm") { run($0) }
        return [output]
    }
}

/// Weights packed once for the kernel table's products, with the products that read them.
typealias PackedWeights = (gemm: PackedGEMM, matrix: PackedMatrix)

/// `b` (`[k, n]`, or `[n, k]` when `transposed`) packed as the kernel table's right operand, kept
/// in `cache`, for a product with `m` rows: when `b` is a float32 constant, the table has
/// products and packing pays, else `nil` (BLAS then multiplies).
///
/// Below 16 rows the product is a few matrix-vector products, bound by reading `b` whatever its
/// layout, unless `b` is stored transposed (a classifier's `Gemm` with `transB`): the product would
/// then pack it on every call. Above 16 M elements (64 MB, VGG-16's first classifier layer is
/// 103 M) a packed copy would cost more memory than its speed is worth.
func packedRight(
    _ b: Tensor, _ isConstant: Bool, _ cache: WeightCache<PackedMatrix>, rows m: Int, depth k: Int, columns n: Int,
    transposed: Bool
) throws -> PackedWeights? {
    guard isConstant, b.dtype == .float32, let gemm = Kernels.current.gemm, m >= 16 || transposed, k > 0, n > 0,
        k * n <= 1 << 24
    else {
        return nil
    }
    let matrix = try cache.value(for: b) {
        try gemm.pack(
            right: b.unsafeElements(as: Float.self).address(count: k * n), depth: k, columns: n,
            depthStride: transposed ? 1 : n, columnStride: transposed ? k : 1)
    }
    return (gemm, matrix)
}

/// `MatMul`: NumPy `matmul`, with batch axes broadcast and 1-D operands promoted and dropped.
struct MatMul: Operator {
    /// A constant right operand (a Linear layer's weights) as the kernel table's packed right operand.
    let packedCache = WeightCache<PackedMatrix>()
    /// The same weights transposed, for gradients of few rows (see ``fewRowsTimesTransposedWeights(_:_:isConstant:)``).
    let transposedCache = WeightCache<TransposedWeights>()

    /// Rows of A times columns of B times the shared depth, for each pair of broadcast batch entries.
    func multiplyAdds(_ inputs: OpInputs) throws -> Int? {
        var (a, b) = (try inputs.required(0).shape, try inputs.required(1).shape)
        guard !a.isEmpty, !b.isEmpty else { return nil }
        if a.count == 1 { a.insert(1, at: 0) }
        if b.count == 1 { b.append(1) }
        let batch = try Shape.broadcast(Array(a.dropLast(2)), Array(b.dropLast(2)))
        return WorkBudget.product(batch + [a[a.count - 2], a[a.count - 1], b[b.count - 1]])
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        var a = try inputs.required(0)
        var b = try inputs.required(1)
        if let y = try packedProduct(a, b, constant: inputs.isConstant(1), bias: nil) { return [y] }
        guard a.dtype == b.dtype else { throw OpError("MatMul inputs have different types: \(a.dtype) and \(b.dtype)") }
        guard a.rank >= 1, b.rank >= 1 else { throw OpError("MatMul inputs must have rank 1 or more") }
        let vectorA = a.rank == 1
        let vectorB = b.rank == 1
        if vectorA { a = try a.reshaped([1, a.shape[0]]) }
        if vectorB { b = try b.reshaped([b.shape[0], 1]) }
        let output = try batchedProduct(a, b)
        var shape = output.shape
        if vectorA { shape.remove(at: shape.count - 2) }
        if vectorB { shape.removeLast() }
        return [try output.reshaped(shape)]
    }
}

/// `alpha · op(A) · op(B)` over the last two axes of each (`op(X)` = `X`, or `Xᵀ` when asked, read
/// in place), batch axes broadcast NumPy-style; `a` and `b` have rank 2 or more and one dtype.
///
/// - Parameter gradient: In a backward rule, the operand that is the incoming gradient: a float32
///   product then leaves out its all-zero rows (see ``gemmSkippingZeroRows``), bit for bit the
///   same on our kernels.
func batchedProduct(
    _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false, alpha: Double = 1,
    gradient: GradientOperand? = nil
) throws -> Tensor {
    guard a.dtype == b.dtype else { throw OpError("MatMul inputs have different types: \(a.dtype) and \(b.dtype)") }
    let (rowsA, columnsA) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
    let (rowsB, columnsB) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
    let (m, k) = transposeA ? (columnsA, rowsA) : (rowsA, columnsA)
    let (kb, n) = transposeB ? (columnsB, rowsB) : (rowsB, columnsB)
    guard k == kb else { throw OpError("cannot multiply \(a.shape) by \(b.shape): inner extents \(k) and \(kb) differ") }
    let batchA = Array(a.shape.dropLast(2))
    let batchB = Array(b.shape.dropLast(2))
    let batch = try Shape.broadcast(batchA, batchB)
    // With beta 0 the product writes every element, unless there is no depth to sum over.
    let output = k > 0 ? try Tensor(uninitialized: a.dtype, shape: batch + [m, n]) : try Tensor(zeros: a.dtype, shape: batch + [m, n])
    let batchCount = batch.reduce(1, *)

    func run<T: GEMMScalar>(_ type: T.Type) {
        let pa = a.unsafeElements(as: T.self).address()
        let pb = b.unsafeElements(as: T.self).address()
        let pc = output.unsafeMutableElements(as: T.self).address()
        /// One product of `rows` rows.
        func multiply(_ a: UnsafePointer<T>, _ b: UnsafePointer<T>, _ c: UnsafeMutablePointer<T>, rows: Int, threaded: Bool) {
            // A refused scratch for the gathered rows leaves the dense product, which needs none.
            if let gradient, T.self == Float.self, k > 0,
                (try? gemmSkippingZeroRows(
                    gradient, transposeA: transposeA, transposeB: transposeB, m: rows, n: n, k: k, alpha: Float(alpha),
                    a: UnsafeRawPointer(a).assumingMemoryBound(to: Float.self), lda: columnsA,
                    b: UnsafeRawPointer(b).assumingMemoryBound(to: Float.self), ldb: columnsB,
                    c: UnsafeMutableRawPointer(c).assumingMemoryBound(to: Float.self), ldc: n, threaded: threaded)) == true
            {
                return
            }
            T.gemm(
                transposeA: transposeA, transposeB: transposeB, m: rows, n: n, k: k, alpha: T(alpha), a: a, lda: columnsA,
                b: b, ldb: columnsB, beta: 0, c: c, ldc: n, threaded: threaded)
        }
        guard m > 0, n > 0 else { return }
        if batchB.reduce(1, *) == 1 && batchA == batch && !transposeA {
            // Shared right operand (a Linear layer): fold A's batch axes into its rows.
            multiply(pa, pb, pc, rows: batchCount * m, threaded: true)
            return
        }
        let stridesA = Shape.broadcastStrides(batchA, to: batch)
        let stridesB = Shape.broadcastStrides(batchB, to: batch)
        let batchStrides = Shape.strides(batch)
        // Many small products (attention heads) go one per thread; a few large ones split inside.
        let perThread = batchCount >= Parallel.width
        Parallel.forEach(batchCount, grain: perThread ? 1 : batchCount) { indices in
            for index in indices {
                var offsetA = 0
                var offsetB = 0
                for axis in 0..<batch.count {
                    let coordinate = (index / batchStrides[axis]) % batch[axis]
                    offsetA += coordinate * stridesA[axis]
                    offsetB += coordinate * stridesB[axis]
                }
                multiply(
                    pa + offsetA * rowsA * columnsA, pb + offsetB * rowsB * columnsB, pc + index * m * n, rows: m,
                    threaded: !perThread)
            }
        }
    }
    try withExtendedLifetime((a, b)) { try withGEMMType(a.dtype, "MatMul") { run($0) } }
    return output
}

extension MatMul {
    /// `A · B (+ bias)` with `B` packed once for the kernel table's products and the bias added in its stores:
    /// when `B` is a 2-D float32 constant that ``packedRight`` packs, `A` has rank 2 or more and
    /// the bias (if any) is `[n]` float32; else `nil`.
    func packedProduct(_ a: Tensor, _ b: Tensor, constant: Bool, bias: Tensor?) throws -> Tensor? {
        guard a.rank >= 2, b.rank == 2, a.dtype == .float32, b.dtype == .float32, a.shape[a.rank - 1] == b.shape[0] else {
            return nil
        }
        let (k, n) = (b.shape[0], b.shape[1])
        if let bias, bias.dtype != .float32 || bias.shape != [n] { return nil }
        let rows = a.count / max(k, 1)
        guard let packed = try packedRight(b, constant, packedCache, rows: rows, depth: k, columns: n, transposed: false) else {
            return nil
        }
        let output = try Tensor(uninitialized: .float32, shape: Array(a.shape.dropLast()) + [n])
        withExtendedLifetime((a, bias)) {
            packed.gemm.multiply(
                m: rows, n: n, k: k, a: .rowMajor(a.unsafeElements(as: Float.self).address(count: rows * k), stride: k),
                b: .packed(packed.matrix), c: output.unsafeMutableElements(as: Float.self).address(count: rows * n), ldc: n,
                columnBias: bias.map { $0.unsafeElements(as: Float.self).address(count: n) })
        }
        return output
    }

    /// ``packedProduct(_:_:constant:bias:)`` through `op`, a MatMul or a widened one; `nil` where it
    /// does not apply.
    static func withColumnBias(_ inputs: OpInputs, bias: Tensor, through op: any Operator) throws -> Tensor? {
        guard let matmul = (op as? MatMul) ?? ((op as? HalfPrecision)?.inner as? MatMul) else { return nil }
        return try matmul.packedProduct(inputs.required(0), inputs.required(1), constant: inputs.isConstant(1), bias: bias)
    }
}

// MARK: - Backward

extension Gemm: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .bilinear(wanted: wanted) }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let alpha = Double(self.alpha)
        var result: [Tensor?] = [nil, nil, nil]
        if step.wants(0) {
            let b = try step.input(1)
            // A: α g op(B)ᵀ, or its transpose when A is stored transposed.
            result[0] = try transA
                ? batchedProduct(b, g, transposeA: transB, transposeB: true, alpha: alpha)
                : batchedProduct(g, b, transposeB: !transB, alpha: alpha, gradient: .left)
        }
        if step.wants(1) {
            let a = try step.input(0)
            result[1] = try transB
                ? batchedProduct(g, a, transposeA: true, transposeB: transA, alpha: alpha)
                : batchedProduct(a, g, transposeA: !transA, alpha: alpha, gradient: .right)
        }
        if step.wants(2) {
            result[2] = try withFloatType(g.dtype, "Gemm") { type in try scaled(g, by: Double(beta), as: type) }
        }
        return result
    }

    private func scaled<T: FloatKernelScalar>(_ x: Tensor, by factor: Double, as type: T.Type) throws -> Tensor {
        try mapElements(x, as: T.self) { $0 * T(factor) }
    }
}

extension MatMul: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .bilinear(wanted: wanted) }

    /// With 1-D operands promoted as in the forward pass: `∂A = g Bᵀ`, `∂B = Aᵀ g`, batch axes
    /// broadcast (the reverse pass sums them back to each operand's shape).
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let shapeA = try step.inputShape(0)
        let shapeB = try step.inputShape(1)
        let promotedA = shapeA.count == 1 ? [1] + shapeA : shapeA
        let promotedB = shapeB.count == 1 ? shapeB + [1] : shapeB
        let batch = try Shape.broadcast(Array(promotedA.dropLast(2)), Array(promotedB.dropLast(2)))
        let g = try step.gradient().reshaped(batch + [promotedA[promotedA.count - 2], promotedB[promotedB.count - 1]])
        var result: [Tensor?] = [nil, nil]
        if promotedB.count == 2 {
            // A shared right operand (a Linear layer): the batch axes fold into rows and the product
            // reads Bᵀ and Aᵀ in place (a transposed copy of the weights cost more than the product).
            let (rows, k, n) = (g.count / max(promotedB[1], 1), promotedB[0], promotedB[1])
            let flatG = try g.reshaped([rows, n])
            if step.wants(0) {
                let w = try step.input(1).reshaped(promotedB)
                let ga = try fewRowsTimesTransposedWeights(flatG, w, isConstant: step.isConstant(1))
                    ?? batchedProduct(flatG, w, transposeB: true, gradient: .left)
                result[0] = try ga.reshaped(shapeA.count == 1 ? batch + shapeA : batch + [promotedA[promotedA.count - 2], k])
            }
            if step.wants(1) {
                let gb = try batchedProduct(step.input(0).reshaped([rows, k]), flatG, transposeA: true, gradient: .right)
                result[1] = try gb.reshaped(shapeB)
            }
            return result
        }
        // ∂A = g Bᵀ and ∂B = Aᵀ g per batch, the operands read transposed in place.
        if step.wants(0) {
            let ga = try batchedProduct(g, step.input(1).reshaped(promotedB), transposeB: true, gradient: .left)
            result[0] = shapeA.count == 1 ? try ga.reshaped(batch + shapeA) : ga
        }
        if step.wants(1) {
            let gb = try batchedProduct(step.input(0).reshaped(promotedA), g, transposeA: true, gradient: .right)
            result[1] = shapeB.count == 1 ? try gb.reshaped(batch + shapeB) : gb
        }
        return result
    }
}

/// A Linear layer's constant weights `W` (`[k, n]`) packed as `Wᵀ` for the kernel table's
/// products (the right operand of `∂A = g Wᵀ`), and whether every weight is finite.
struct TransposedWeights {
    let matrix: PackedMatrix
    let finite: Bool
}

extension MatMul {
    /// `g Wᵀ` for a `rows × n` gradient `g` and constant weights `W` (`[k, n]`) when most rows of
    /// `g` are zero, as a class-token readout's gradient is in a transformer's last block: the
    /// live rows times `Wᵀ` packed once and kept, zeros elsewhere (packing the transposed weights
    /// on every call costs more than a few rows' product). The same bits as the dense product
    /// (see ``gemmSkippingZeroRows``); `nil` when the float32 kernels do not run, `W` is not a
    /// constant or holds a non-finite value, or more than half the rows are live.
    func fewRowsTimesTransposedWeights(_ g: Tensor, _ w: Tensor, isConstant: Bool) throws -> Tensor? {
        guard isConstant, g.dtype == .float32, w.dtype == .float32, g.rank == 2, w.rank == 2, let gemm = Kernels.current.gemm
        else { return nil }
        let (rows, n, k) = (g.shape[0], g.shape[1], w.shape[0])
        guard w.shape[1] == n, rows > 1, n > 0, k > 0, k * n <= 1 << 24 else { return nil }
        let base = g.unsafeElements(as: Float.self).address()
        guard let live = withExtendedLifetime(g, { liveRows(base, rows: rows, columns: n, stride: n) }) else { return nil }
        let weights = try transposedCache.value(for: w) {
            let values = w.unsafeElements(as: Float.self).address()
            return try withExtendedLifetime(w) {
                TransposedWeights(
                    matrix: try gemm.pack(right: values, depth: n, columns: k, depthStride: 1, columnStride: n),
                    finite: allFinite(values, rows: k, columns: n, stride: n))
            }
        }
        guard weights.finite else { return nil }
        let output = try Tensor(uninitialized: .float32, shape: [rows, k])
        try withExtendedLifetime(g) {
            try multiplyLiveRows(
                base, live, rows: rows, depth: n, stride: n, columns: k, zero: 0,
                into: output.unsafeMutableElements(as: Float.self).address(), ldc: k
            ) { block, count, product in
                gemm.multiply(m: count, n: k, k: n, a: .rowMajor(block, stride: n), b: .packed(weights.matrix), c: product, ldc: k)
            }
        }
        return output
    }
}

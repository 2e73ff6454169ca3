import CKernels

/// Single-precision matrix products on our micro-kernels (one ``KernelLevel``'s), with either
/// operand packed once (a layer's weights) and reused by every call, or read where it lies.
///
/// OpenBLAS repacks both operands on every call, cannot fuse a bias or ReLU into its stores, and
/// picks its kernels from its own CPU detection (which can fall back to a generic SSE3 core on a
/// CPU it does not know); these kernels read weights packed once and apply the epilogue while
/// the tile is in registers. Each element of `C` is the chain `c = fma(aᵢₚ, bₚⱼ, c)` over the
/// depth in order, from zero (or `C`), whatever the shapes, the operands' forms, the blocking,
/// the split over threads and the level: a column's result never depends on the columns computed
/// with it (a sample's output does not depend on its batch), and AVX2 gives AVX-512's bits.
package struct PackedGEMM: @unchecked Sendable {
    private let table: UnsafePointer<sd_kernels>
    /// Depth and row blocks, from this CPU's cache sizes (they change no result).
    private(set) var depthBlock, rowBlock: Int32

    init(_ table: UnsafePointer<sd_kernels>) {
        self.table = table
        var (kc, mc): (Int32, Int32) = (0, 0)
        sd_gemm_blocking(table, &kc, &mc)
        (depthBlock, rowBlock) = (kc, mc)
    }

    /// These kernels with other depth and row blocks (for tests: the blocks change no result).
    func withBlocking(depth: Int, rows: Int) -> PackedGEMM {
        var copy = self
        (copy.depthBlock, copy.rowBlock) = (Int32(depth), Int32(rows))
        return copy
    }

    /// The level-2 cache of one core in bytes, as the system reports it (256 KiB where it does not
    /// say, the smallest of the x86 cores these kernels run on).
    package static let level2CacheBytes: Int = {
        let reported = Int(sd_l2_cache_size())
        return reported >= 65_536 ? reported : 256 << 10
    }()

    /// The level these kernels belong to.
    package var level: KernelLevel { table.pointee.level == SD_LEVEL_AVX512 ? .avx512 : .avx2 }
    /// Rows of a left operand's micro-panel, and columns of a right operand's.
    package var panelRows: Int { Int(table.pointee.mr) }
    package var panelColumns: Int { Int(table.pointee.nr) }
    /// Floats per vector at this level.
    package var lanes: Int { Int(table.pointee.lanes) }

    /// One operand of a product.
    package enum Operand {
        /// Packed by this level's ``pack(left:rows:depth:rowStride:depthStride:)`` or
        /// ``pack(right:depth:columns:depthStride:columnStride:)``.
        case packed(PackedMatrix)
        /// Row-major with a row stride: `A`'s element `(i, p)` at `[i · stride + p]`, `B`'s `(p, j)` at `[p · stride + j]`.
        case rowMajor(UnsafePointer<Float>, stride: Int)
        /// Stored transposed: `A`'s element `(i, p)` at `[p · stride + i]`, `B`'s `(p, j)` at
        /// `[j · stride + p]` (a right operand in this form is packed first, on every call).
        case transposed(UnsafePointer<Float>, stride: Int)
    }

    /// `C = A · B` (`+ C` when `accumulate`), then `+ rowBias[i]`, `+ columnBias[j]`,
    /// `+ residual[i · residualStride + j]` and `max(0, ·)` when asked, each step rounded as the
    /// separate ops round it, split over ``Parallel``'s threads unless `threaded` is false.
    ///
    /// - Parameters:
    ///   - m, n, k: `A` is `m × k`, `B` is `k × n`, `C` is `m × n` with row stride `ldc`.
    ///   - a: A left operand packed for `m` rows and depth `k`, or one read in place.
    ///   - b: A right operand packed for depth `k` and `n` columns, or one read in place.
    ///   - residual: An `m × n` matrix added before ReLU (a residual connection), or nil.
    /// - Precondition: packed operands of the sizes given, packed by these kernels (caller-side
    ///   invariants, never user input).
    package func multiply(
        m: Int, n: Int, k: Int, a: Operand, b: Operand, c: UnsafeMutablePointer<Float>, ldc: Int,
        accumulate: Bool = false, rowBias: UnsafePointer<Float>? = nil, columnBias: UnsafePointer<Float>? = nil,
        residual: UnsafePointer<Float>? = nil, residualStride: Int = 0, relu: Bool = false, threaded: Bool = true
    ) {
        guard m > 0, n > 0 else { return }
        if case .transposed(let base, let stride) = b, k > 0 {
            // Columns of a transposed B are not contiguous: pack them, a block of at most ~16 MB at a
            // time (k × n copies against m × n × k multiply-adds), and multiply each block.
            let block = max(panelColumns, (1 << 22) / k / panelColumns * panelColumns)
            for start in Swift.stride(from: 0, to: n, by: block) {
                let columns = min(block, n - start)
                // The buffer pool's pages are warm: a fresh allocation faulted them in on every call.
                let count = sd_gemm_packed_b_count(table, Int32(k), Int32(columns))
                let packed = (try? PackedMatrix(.right, rows: k, columns: columns, level: level, count: count))
                    ?? PackedMatrix(scratchFor: .right, rows: k, columns: columns, level: level, count: count)
                pack(
                    right: base + start * stride, depth: k, columns: columns, depthStride: 1, columnStride: stride,
                    into: packed, threaded: threaded)
                multiply(
                    m: m, n: columns, k: k, a: a, b: .packed(packed), c: c + start, ldc: ldc, accumulate: accumulate,
                    rowBias: rowBias, columnBias: columnBias.map { $0 + start }, residual: residual.map { $0 + start },
                    residualStride: residualStride, relu: relu, threaded: threaded)
            }
            return
        }
        func part(_ rows: Range<Int>, _ columns: Range<Int>) {
            var problem = sd_gemm_problem()
            (problem.m, problem.n, problem.k) = (Int32(rows.count), Int32(columns.count), Int32(k))
            (problem.a, problem.a_row_stride, problem.a_depth_stride) = a.left(from: rows.lowerBound, depth: k)
            (problem.b, problem.ldb) = b.right(from: columns.lowerBound, depth: k)
            (problem.c, problem.ldc) = (c + rows.lowerBound * ldc + columns.lowerBound, ldc)
            (problem.accumulate, problem.relu) = (accumulate ? 1 : 0, relu ? 1 : 0)
            problem.row_bias = rowBias.map { $0 + rows.lowerBound }
            problem.column_bias = columnBias.map { $0 + columns.lowerBound }
            problem.residual = residual.map { $0 + rows.lowerBound * residualStride + columns.lowerBound }
            problem.ldr = residualStride
            (problem.kc, problem.mc) = (depthBlock, rowBlock)
            table.pointee.gemm?(&problem)
        }
        guard threaded, Parallel.width > 1 else { return part(0..<m, 0..<n) }
        // Parts of at least ~1 M multiply-adds.
        let minimumElements = max(1, (1 << 20) / max(k, 1))
        if n >= m {
            forEachPanelRange(n, panel: panelColumns, minimum: minimumElements / m) { part(0..<m, $0) }
        } else {
            forEachPanelRange(m, panel: panelRows, minimum: minimumElements / n) { part($0, 0..<n) }
        }
    }

    /// `C = alpha · op(A) · op(B) + beta · C` with BLAS's arguments (``BLAS/sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:threaded:)``),
    /// so products that went to the BLAS run here instead. `C` is not read when `beta` is 0.
    package func sgemm(
        transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int, threaded: Bool = true
    ) {
        guard m > 0, n > 0 else { return }
        let left: Operand = transposeA ? .transposed(a, stride: lda) : .rowMajor(a, stride: lda)
        let right: Operand = transposeB ? .transposed(b, stride: ldb) : .rowMajor(b, stride: ldb)
        func scale(_ x: UnsafeMutablePointer<Float>, _ factor: Float) {
            for i in 0..<m { for j in 0..<n { x[i * ldc + j] *= factor } }
        }
        if alpha == 1 || beta == 0 {
            if beta != 0 && beta != 1 { scale(c, beta) }
            multiply(m: m, n: n, k: k, a: left, b: right, c: c, ldc: ldc, accumulate: beta != 0, threaded: threaded)
            if alpha != 1 { scale(c, alpha) }
            return
        }
        // Both factors: the product apart, then combined (rare: attention pre-scales instead).
        let product = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
        defer { product.deallocate() }
        multiply(m: m, n: n, k: k, a: left, b: right, c: product, ldc: n, threaded: threaded)
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = alpha * product[i * n + j] + beta * c[i * ldc + j] } }
    }

    /// Calls `body` on disjoint ranges covering `0..<count`, cut on multiples of `panel` (a packed
    /// operand's panels cannot be entered in the middle) and split over ``Parallel``'s threads, with
    /// at least `minimum` elements (rounded down to whole panels, one at least) per part.
    private func forEachPanelRange(_ count: Int, panel: Int, minimum: Int, _ body: (Range<Int>) -> Void) {
        Parallel.forEach((count + panel - 1) / panel, grain: max(1, minimum / panel)) { panels in
            body(panels.lowerBound * panel..<min(count, panels.upperBound * panel))
        }
    }

    /// Packs `A` (element `(i, p)` at `a[i * rowStride + p * depthStride]`) as a left operand.
    package func pack(left a: UnsafePointer<Float>, rows m: Int, depth k: Int, rowStride: Int, depthStride: Int = 1)
        throws -> PackedMatrix
    {
        let packed = try PackedMatrix(
            .left, rows: m, columns: k, level: level, count: sd_gemm_packed_a_count(table, Int32(m), Int32(k)))
        let out = packed.mutableBase
        // Panels are independent: whole panels per thread (a model's first run packs all its weights).
        forEachPanelRange(m, panel: panelRows, minimum: (1 << 16) / max(k, 1)) { rows in
            sd_gemm_pack_a(
                table, Int32(rows.count), Int32(k), a + rows.lowerBound * rowStride, rowStride, depthStride,
                out + rows.lowerBound * k)
        }
        return packed
    }

    /// Packs `B` (element `(p, j)` at `b[p * depthStride + j * columnStride]`) as a right operand.
    package func pack(
        right b: UnsafePointer<Float>, depth k: Int, columns n: Int, depthStride: Int, columnStride: Int = 1
    ) throws -> PackedMatrix {
        let packed = try PackedMatrix(
            .right, rows: k, columns: n, level: level, count: sd_gemm_packed_b_count(table, Int32(k), Int32(n)))
        pack(right: b, depth: k, columns: n, depthStride: depthStride, columnStride: columnStride, into: packed, threaded: true)
        return packed
    }

    private func pack(
        right b: UnsafePointer<Float>, depth k: Int, columns n: Int, depthStride: Int, columnStride: Int,
        into packed: PackedMatrix, threaded: Bool
    ) {
        let out = packed.mutableBase
        let minimum = threaded ? (1 << 16) / max(k, 1) : n
        forEachPanelRange(n, panel: panelColumns, minimum: minimum) { columns in
            sd_gemm_pack_b(
                table, Int32(k), Int32(columns.count), b + columns.lowerBound * columnStride, depthStride, columnStride,
                out + columns.lowerBound * k)
        }
    }
}

extension PackedGEMM.Operand {
    /// The left operand from row `row` on, as the kernel takes it (both strides 0 mark packed panels).
    fileprivate func left(from row: Int, depth k: Int) -> (UnsafePointer<Float>, Int, Int) {
        switch self {
        case .packed(let matrix): (matrix.base + row * k, 0, 0)
        case .rowMajor(let base, let stride): (base + row * stride, stride, 1)
        case .transposed(let base, let stride): (base + row, 1, stride)
        }
    }

    /// The right operand from column `column` on (stride 0 marks packed panels); never transposed here.
    fileprivate func right(from column: Int, depth k: Int) -> (UnsafePointer<Float>, Int) {
        switch self {
        case .packed(let matrix): (matrix.base + column * k, 0)
        case .rowMajor(let base, let stride), .transposed(let base, let stride): (base + column, stride)
        }
    }
}

/// A matrix in one level's ``PackedGEMM`` panel layout, as the left operand (`rows × depth`) or
/// the right one (`depth × columns`) of a product.
package struct PackedMatrix: @unchecked Sendable {
    package enum Side: Sendable { case left, right }
    package let side: Side
    /// The logical extents: `m × k` for a left operand, `k × n` for a right one.
    package let rows, columns: Int
    /// The level whose panel shape this is.
    package let level: KernelLevel
    private let storage: TensorStorage

    fileprivate init(_ side: Side, rows: Int, columns: Int, level: KernelLevel, count: Int) throws {
        (self.side, self.rows, self.columns, self.level) = (side, rows, columns, level)
        storage = try TensorStorage(uninitializedByteCount: max(count, 1) * MemoryLayout<Float>.stride)
    }

    /// A packed copy made for one product, of a size the caller bounds (so its allocation cannot be absurd).
    fileprivate init(scratchFor side: Side, rows: Int, columns: Int, level: KernelLevel, count: Int) {
        (self.side, self.rows, self.columns, self.level) = (side, rows, columns, level)
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        storage = TensorStorage(adopting: .allocate(byteCount: bytes, alignment: 64), byteCount: bytes)
    }

    var base: UnsafePointer<Float> { UnsafePointer(mutableBase) }
    fileprivate var mutableBase: UnsafeMutablePointer<Float> { storage.base.assumingMemoryBound(to: Float.self) }
}

import CKernels

/// Single-precision matrix products through our AVX-512 micro-kernels, with either operand packed
/// once (a layer's weights) and reused by every call.
///
/// OpenBLAS repacks both operands on every call and cannot fuse a bias or ReLU into its stores;
/// these kernels read weights packed once (on a node's first run) and apply the epilogue while
/// the tile is in registers. Each element of `C` is summed in depth order, whatever the shapes, the operands'
/// forms and the split over threads, so a column's result never depends on the columns computed
/// with it (a sample's output does not depend on its batch).
///
/// Where ``CPUKernels/avx512`` is false, ``isAvailable`` is too and callers use ``BLAS``.
public enum PackedGEMM {
    /// Whether the kernels run in this process (``CPUKernels/avx512``).
    public static var isAvailable: Bool { CPUKernels.avx512 }

    /// Rows of a left operand's micro-panel, and columns of a right operand's.
    static let panelRows = Int(SD_GEMM_MR)
    static let panelColumns = Int(SD_GEMM_NR)

    /// One operand of a product: packed, or row-major with a row stride.
    public enum Operand {
        case packed(PackedMatrix)
        case rowMajor(UnsafePointer<Float>, stride: Int)
    }

    /// `C = A · B` (`+ C` when `accumulate`), then `+ rowBias[i]`, `+ columnBias[j]` and
    /// `max(0, ·)` when asked, split over ``Parallel``'s threads unless `threaded` is false.
    ///
    /// - Parameters:
    ///   - m, n, k: `A` is `m × k`, `B` is `k × n`, `C` is `m × n` with row stride `ldc`.
    ///   - a: A packed left operand of `m` rows and depth `k`, or a row-major `A`.
    ///   - b: A packed right operand of depth `k` and `n` columns, or a row-major `B`.
    /// - Precondition: ``isAvailable``, and packed operands of the sizes given (caller-side
    ///   invariants, never user input).
    public static func multiply(
        m: Int, n: Int, k: Int, a: Operand, b: Operand, c: UnsafeMutablePointer<Float>, ldc: Int,
        accumulate: Bool = false, rowBias: UnsafePointer<Float>? = nil, columnBias: UnsafePointer<Float>? = nil,
        relu: Bool = false, threaded: Bool = true
    ) {
        guard m > 0, n > 0 else { return }
        func part(_ rows: Range<Int>, _ columns: Range<Int>) {
            let (pa, lda) = a.pointer(row: rows.lowerBound, depth: k)
            let (pb, ldb) = b.pointer(column: columns.lowerBound, depth: k)
            sd_gemm(
                Int32(rows.count), Int32(columns.count), Int32(k), pa, lda, pb, ldb,
                c + rows.lowerBound * ldc + columns.lowerBound, ldc, accumulate ? 1 : 0,
                rowBias.map { $0 + rows.lowerBound }, columnBias.map { $0 + columns.lowerBound }, relu ? 1 : 0)
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

    /// Calls `body` on disjoint ranges covering `0..<count`, cut on multiples of `panel` (a packed
    /// operand's panels cannot be entered in the middle) and split over ``Parallel``'s threads, with
    /// at least `minimum` elements (rounded down to whole panels, one at least) per part.
    private static func forEachPanelRange(_ count: Int, panel: Int, minimum: Int, _ body: (Range<Int>) -> Void) {
        Parallel.forEach((count + panel - 1) / panel, grain: max(1, minimum / panel)) { panels in
            body(panels.lowerBound * panel..<min(count, panels.upperBound * panel))
        }
    }

    /// Packs `A` (element `(i, p)` at `a[i * rowStride + p * depthStride]`) as a left operand.
    public static func pack(left a: UnsafePointer<Float>, rows m: Int, depth k: Int, rowStride: Int, depthStride: Int = 1)
        throws -> PackedMatrix
    {
        let packed = try PackedMatrix(.left, rows: m, columns: k, count: sd_gemm_packed_a_count(Int32(m), Int32(k)))
        let out = packed.mutableBase
        // Panels are independent: whole panels per thread (a model's first run packs all its weights).
        forEachPanelRange(m, panel: panelRows, minimum: (1 << 16) / max(k, 1)) { rows in
            sd_gemm_pack_a(
                Int32(rows.count), Int32(k), a + rows.lowerBound * rowStride, rowStride, depthStride,
                out + rows.lowerBound * k)
        }
        return packed
    }

    /// Packs `B` (element `(p, j)` at `b[p * depthStride + j * columnStride]`) as a right operand.
    public static func pack(
        right b: UnsafePointer<Float>, depth k: Int, columns n: Int, depthStride: Int, columnStride: Int = 1
    ) throws -> PackedMatrix {
        let packed = try PackedMatrix(.right, rows: k, columns: n, count: sd_gemm_packed_b_count(Int32(k), Int32(n)))
        let out = packed.mutableBase
        forEachPanelRange(n, panel: panelColumns, minimum: (1 << 16) / max(k, 1)) { columns in
            sd_gemm_pack_b(
                Int32(k), Int32(columns.count), b + columns.lowerBound * columnStride, depthStride, columnStride,
                out + columns.lowerBound * k)
        }
        return packed
    }
}

extension PackedGEMM.Operand {
    /// The operand from row `row` on, as the kernel takes it (stride 0 marks packed panels).
    fileprivate func pointer(row: Int, depth k: Int) -> (UnsafePointer<Float>, Int) {
        switch self {
        case .packed(let matrix): return (matrix.base + row * k, 0)
        case .rowMajor(let base, let stride): return (base + row * stride, stride)
        }
    }

    /// The operand from column `column` on.
    fileprivate func pointer(column: Int, depth k: Int) -> (UnsafePointer<Float>, Int) {
        switch self {
        case .packed(let matrix): return (matrix.base + column * k, 0)
        case .rowMajor(let base, let stride): return (base + column, stride)
        }
    }
}

/// A matrix in ``PackedGEMM``'s panel layout, as the left operand (`rows × depth`) or the
/// right one (`depth × columns`) of a product.
public struct PackedMatrix: @unchecked Sendable {
    public enum Side: Sendable { case left, right }
    public let side: Side
    /// The logical extents: `m × k` for a left operand, `k × n` for a right one.
    public let rows, columns: Int
    private let storage: TensorStorage

    fileprivate init(_ side: Side, rows: Int, columns: Int, count: Int) throws {
        (self.side, self.rows, self.columns) = (side, rows, columns)
        storage = try TensorStorage(uninitializedByteCount: max(count, 1) * MemoryLayout<Float>.stride)
    }

    var base: UnsafePointer<Float> { UnsafePointer(mutableBase) }
    fileprivate var mutableBase: UnsafeMutablePointer<Float> { storage.base.assumingMemoryBound(to: Float.self) }
}

import Foundation
import TensorCore

/// 3×3, stride-1 convolution by Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray, 2015).
///
/// Each 2×2 block of outputs comes from a 4×4 input tile. Input tiles (`Bᵀ d B`) and filters
/// (`G g Gᵀ`) are taken to a 4×4 transform domain where the convolution is an element-wise
/// product summed over channels, i.e. 16 independent matrix products
/// `M[ξν] = U[ξν] · V[ξν]` (`[F, C] · [C, tiles]`), and `Aᵀ M A` brings each tile back. That is
/// 16 multiplies per 4 outputs per channel pair instead of 36, and the transformed input is 4×
/// the input where im2col's columns are 9×. The transforms only add, subtract and halve, so the
/// result stays within a few float32 roundings of the direct sum.
///
/// Tiles of all samples share the products (tile `t` of sample `n` is column `n · tiles + t`),
/// processed in chunks that keep the transformed data near 8 MB.
struct WinogradConvolution {
    let channels, filters, batch: Int
    let height, width, outputHeight, outputWidth, padTop, padLeft: Int
    let tilesHigh, tilesWide: Int

    /// Maps with fewer tiles than this make the 16 products too narrow to beat im2col's one wide
    /// product. With the filters packed once (the kernel table's products), 16 tiles (a 7×7 map) still pay:
    /// ResNet-18 at batch 1 runs about 10% faster than with 64, ResNet-50 about 5%. With BLAS,
    /// which repacks the filters on every call, only 64 and up pay. Counted per sample, so a
    /// sample's result never depends on the batch it came in.
    static var minimumTiles: Int { Kernels.current.gemm != nil ? 16 : 64 }

    /// The Winograd plan for a convolution plan, or `nil` where it does not apply or would not pay.
    init?(_ p: Conv.Plan) {
        let g = p.window
        guard p.groups == 1, g.input[0] == 1, g.kernel == [1, 3, 3], g.strides == [1, 1, 1], g.dilations == [1, 1, 1],
            p.channels >= 8, p.filters >= 8
        else { return nil }
        (channels, filters, batch) = (p.channels, p.filters, p.batch)
        (height, width, outputHeight, outputWidth) = (g.input[1], g.input[2], g.output[1], g.output[2])
        (padTop, padLeft) = (g.padBegin[1], g.padBegin[2])
        (tilesHigh, tilesWide) = ((outputHeight + 1) / 2, (outputWidth + 1) / 2)
        guard tilesHigh * tilesWide >= WinogradConvolution.minimumTiles else { return nil }
    }

    /// The convolution of `input` `[N, C, H, W]` with filters from ``filters(_:)``, plus
    /// `residual` (`[N, F, H', W']`, a residual connection's other term) before the activation.
    ///
    /// - Parameter runs: How many runs of tiles (as even as can be) when each thread takes whole
    ///   runs from input to output (``pipelineRuns(filters:)``), nil to split each stage over the
    ///   threads. Both give the same bits.
    func forward(
        input: UnsafePointer<Float>, filters u: WinogradFilters, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>? = nil, activation: Activation?, output: UnsafeMutablePointer<Float>, runs: Int?
    ) throws {
        let total = batch * tilesHigh * tilesWide
        if let runs, runs >= 1 {
            // Each thread takes whole runs of tiles from input to output: nothing one thread
            // transforms is read by another, and its run stays in its own level-2 cache.
            // Runs start on multiples of 16 tiles (whole vectors in the transforms), as even as that allows.
            func start(_ index: Int) -> Int { index == runs ? total : index * total / runs / 16 * 16 }
            let longest = (total + runs - 1) / runs + 16
            try Parallel.tryForEach(runs, grain: 1) { part in
                try BufferPool.withScratch(Float.self, count: 16 * channels * longest) { v in
                    try BufferPool.withScratch(Float.self, count: 16 * filters * longest) { m in
                        for index in part {
                            let tiles = start(index)..<start(index + 1)
                            if tiles.isEmpty { continue }
                            transformInput(input, tiles: tiles, into: v, stride: tiles.count, threaded: false)
                            multiply(u, v, m, points: 0..<16, count: tiles.count)
                            transformOutput(
                                m, tiles: tiles, stride: tiles.count, bias: bias, residual: residual, activation: activation,
                                into: output, threaded: false)
                        }
                    }
                }
            }
            return
        }
        let chunk = max(16, min(total, (1 << 21) / (16 * (channels + filters))))
        try BufferPool.withScratch(Float.self, count: 16 * channels * chunk) { v in
            try BufferPool.withScratch(Float.self, count: 16 * filters * chunk) { m in
                for start in stride(from: 0, to: total, by: chunk) {
                    let count = min(chunk, total - start)
                    transformInput(input, tiles: start..<start + count, into: v, stride: count)
                    // The 16 products are independent: one thread each, BLAS single-threaded inside.
                    Parallel.forEach(16, grain: 1) { points in multiply(u, v, m, points: points, count: count) }
                    transformOutput(
                        m, tiles: start..<start + count, stride: count, bias: bias, residual: residual, activation: activation,
                        into: output)
                }
            }
        }
    }

    /// How many runs of tiles when every thread can take its own runs start to end
    /// (``forward(input:filters:bias:residual:activation:output:runs:)``): the filters of all 16 points
    /// fit in a quarter of the level-2 cache beside a run's transformed input and products
    /// (half of it), and there are at least four runs per thread. Nil otherwise (a deep layer's
    /// filters or a small map), which splits each stage over the threads instead.
    func pipelineRuns(filters u: WinogradFilters) -> Int? {
        guard case .packed = u, Parallel.width > 1 else { return nil }
        let cache = PackedGEMM.level2CacheBytes
        guard 16 * channels * filters * 4 <= cache / 4 else { return nil }
        let total = batch * tilesHigh * tilesWide
        let longest = cache / 2 / (16 * (channels + filters) * 4)
        guard longest >= 16 else { return nil }
        // The same number of runs for every thread, as few as the longest run allows.
        let perThread = (total + Parallel.width * longest - 1) / (Parallel.width * longest)
        return perThread >= 4 ? Parallel.width * perThread : nil
    }

    /// `M[ξν] = U[ξν] · V[ξν]` for the points asked, over `count` tiles, on the calling thread.
    private func multiply(
        _ u: WinogradFilters, _ v: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>, points: Range<Int>, count: Int
    ) {
        for point in points {
            let (b, c) = (v + point * channels * count, m + point * filters * count)
            switch u {
            case .packed(let gemm, let panels):
                gemm.multiply(
                    m: filters, n: count, k: channels, a: .packed(panels[point]),
                    b: .rowMajor(b, stride: count), c: c, ldc: count, threaded: false)
            case .transformed(let tensor):
                BLAS.sgemm(
                    m: filters, n: count, k: channels,
                    a: tensor.unsafeElements(as: Float.self).address(at: point * filters * channels, count: filters * channels),
                    lda: channels, b: b, ldb: count, c: c, ldc: count, threaded: false)
            }
        }
    }

    /// The filters of `weights` in Winograd's domain, packed for the kernel table's products where it has them.
    func filters(_ weights: Tensor) throws -> WinogradFilters {
        let u = try transformFilters(weights)
        guard let gemm = Kernels.current.gemm else { return .transformed(u) }
        let transformed = u.unsafeElements(as: Float.self)
        let block = filters * channels
        return try withExtendedLifetime(u) {
            .packed(gemm, try (0..<16).map { point in
                try gemm.pack(
                    left: transformed.address(at: point * block, count: block), rows: filters, depth: channels, rowStride: channels)
            })
        }
    }

    /// `U[ξν][f][c] = (G g Gᵀ)[ξ][ν]` for each 3×3 filter `g` of `weights` `[F, C, 3, 3]`, as a
    /// `[16, F, C]` tensor.
    func transformFilters(_ weights: Tensor) throws -> Tensor {
        let transformed = try Tensor(uninitialized: .float32, shape: [16, filters, channels])
        try weights.withUnsafeBuffer(as: Float.self) { source in
            guard let base = source.baseAddress, source.count == filters * channels * 9 else {
                throw OpError("Winograd needs [\(filters), \(channels), 3, 3] float32 weights")
            }
            transformFilters(base, into: transformed.unsafeMutableElements(as: Float.self).address())
        }
        return transformed
    }

    private func transformFilters(_ weights: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>) {
        let pairs = filters * channels
        Parallel.forEach(pairs, grain: 1_024) { range in
            for pair in range {
                let g = weights + pair * 9
                // Rows of G g (4 × 3), as 3-lane vectors in a SIMD4.
                let r0 = SIMD4(g[0], g[1], g[2], 0)
                let r1 = SIMD4(g[3], g[4], g[5], 0)
                let r2 = SIMD4(g[6], g[7], g[8], 0)
                /// Row `r` of (G g) times Gᵀ.
                func store(_ r: Int, _ t: SIMD4<Float>) {
                    let base = u + r * 4 * pairs + pair
                    base[0] = t[0]
                    base[pairs] = (t[0] + t[1] + t[2]) * 0.5
                    base[2 * pairs] = (t[0] - t[1] + t[2]) * 0.5
                    base[3 * pairs] = t[2]
                }
                store(0, r0)
                store(1, (r0 + r1 + r2) * 0.5)
                store(2, (r0 - r1 + r2) * 0.5)
                store(3, r2)
            }
        }
    }

    /// Calls `body(column, n, ty, firstTx, count)` for each run of tiles of `tiles` that lie in
    /// one tile row (sample-major order), counting instead of dividing per tile.
    @inline(__always)
    private func forEachTileRun(_ tiles: Range<Int>, _ body: (Int, Int, Int, Int, Int) -> Void) {
        let perSample = tilesHigh * tilesWide
        var n = tiles.lowerBound / perSample
        var ty = (tiles.lowerBound % perSample) / tilesWide
        var tx = tiles.lowerBound % tilesWide
        var column = 0
        while column < tiles.count {
            let count = min(tilesWide - tx, tiles.count - column)
            body(column, n, ty, tx, count)
            column += count
            tx += count
            if tx == tilesWide {
                tx = 0
                ty += 1
                if ty == tilesHigh {
                    ty = 0
                    n += 1
                }
            }
        }
    }

    /// `V[ξν][c][t] = (Bᵀ d B)[ξ][ν]` for the 4×4 input tile `d` of each tile in `tiles`, zero
    /// outside the image (the padding). Four neighbouring tiles go through the arithmetic
    /// together, one per SIMD lane, so each of the 16 results is one 4-wide store.
    private func transformInput(
        _ input: UnsafePointer<Float>, tiles: Range<Int>, into v: UnsafeMutablePointer<Float>, stride: Int, threaded: Bool = true
    ) {
        let plane = channels * stride
        let (height, width, channels, padTop, padLeft) = (height, width, channels, padTop, padLeft)
        let vector = Kernels.current.vector
        Parallel.forEach(channels, grain: threaded ? max(1, 4_096 / max(tiles.count, 1)) : channels) { channelRange in
            for c in channelRange {
                forEachTileRun(tiles) { firstColumn, n, ty, firstTx, count in
                    let source = input + (n * channels + c) * height * width
                    if let vector {  // eight or sixteen tiles per vector, the same arithmetic
                        vector.winogradInput(
                            source, height: height, width: width, padTop: padTop, padLeft: padLeft, ty: ty, tx: firstTx,
                            count: count, into: v + c * stride + firstColumn, plane: plane)
                        return
                    }
                    let top = 2 * ty - padTop
                    /// Tap column `j` (0..<4) of tiles `tx..<tx+4`, in tile row `i`; zero outside.
                    func taps(_ i: Int, _ tx: Int, _ j: Int) -> SIMD4<Float> {
                        let h = top + i
                        guard h >= 0, h < height else { return .zero }
                        let row = source + h * width
                        var lanes = SIMD4<Float>.zero
                        for lane in 0..<4 {
                            let w = 2 * (tx + lane) - padLeft + j
                            if w >= 0, w < width { lanes[lane] = row[w] }
                        }
                        return lanes
                    }
                    var offset = 0
                    while offset < count {
                        let tx = firstTx + offset
                        let lanes = min(4, count - offset)
                        // Rows of d for four tiles at once (lanes beyond the run are computed, not stored).
                        let left = 2 * tx - padLeft
                        let rows: (Quad, Quad, Quad, Quad)
                        if lanes == 4, left >= 0, left + 9 < width, top >= 0, top + 3 < height {
                            func row(_ i: Int) -> Quad {
                                let p = source + (top + i) * width + left
                                return Quad(
                                    SIMD4(p[0], p[2], p[4], p[6]), SIMD4(p[1], p[3], p[5], p[7]),
                                    SIMD4(p[2], p[4], p[6], p[8]), SIMD4(p[3], p[5], p[7], p[9]))
                            }
                            rows = (row(0), row(1), row(2), row(3))
                        } else {
                            func row(_ i: Int) -> Quad { Quad(taps(i, tx, 0), taps(i, tx, 1), taps(i, tx, 2), taps(i, tx, 3)) }
                            rows = (row(0), row(1), row(2), row(3))
                        }
                        let (d0, d1, d2, d3) = rows
                        let column = firstColumn + offset
                        /// Row `r` of Bᵀ d, times B, stored at points 4r..4r+3.
                        func store(_ r: Int, _ t: Quad) {
                            let results = Quad(t.x0 - t.x2, t.x1 + t.x2, t.x2 - t.x1, t.x1 - t.x3)
                            let destination = v + 4 * r * plane + c * stride + column
                            results.store(to: destination, pointStride: plane, lanes: lanes)
                        }
                        store(0, d0 - d2)
                        store(1, d1 + d2)
                        store(2, d2 - d1)
                        store(3, d1 - d3)
                        offset += lanes
                    }
                }
            }
        }
    }

    /// `Y = Aᵀ M A` per tile and filter: the 2×2 outputs, with the bias, the residual and the
    /// activation, written where they fall inside the output map; four neighbouring tiles at once, as above.
    private func transformOutput(
        _ m: UnsafePointer<Float>, tiles: Range<Int>, stride: Int, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
        activation: Activation?, into output: UnsafeMutablePointer<Float>, threaded: Bool = true
    ) {
        let plane = filters * stride
        let relu = activation == .relu
        let other = relu ? nil : activation
        let (filters, outputHeight, outputWidth) = (filters, outputHeight, outputWidth)
        let vector = Kernels.current.vector
        Parallel.forEach(filters, grain: threaded ? max(1, 4_096 / max(tiles.count, 1)) : filters) { filterRange in
            for f in filterRange {
                let offset = bias?[f] ?? 0
                forEachTileRun(tiles) { firstColumn, n, ty, firstTx, count in
                    let map = output + (n * filters + f) * outputHeight * outputWidth
                    let residualMap = residual.map { $0 + (n * filters + f) * outputHeight * outputWidth }
                    // Activations other than ReLU go over the run's output rows once they are written.
                    defer {
                        if let other {
                            let (first, end) = (2 * firstTx, min(2 * (firstTx + count), outputWidth))
                            for row in 2 * ty..<min(2 * ty + 2, outputHeight) {
                                other.apply(map + row * outputWidth + first, count: end - first)
                            }
                        }
                    }
                    if let vector {
                        vector.winogradOutput(
                            m + f * stride + firstColumn, plane: plane, count: count, into: map, height: outputHeight,
                            width: outputWidth, ty: ty, tx: firstTx, bias: offset, residual: residualMap, relu: relu)
                        return
                    }
                    var done = 0
                    while done < count {
                        let tx = firstTx + done
                        let lanes = min(4, count - done)
                        let base = m + f * stride + firstColumn + done
                        func row(_ r: Int) -> Quad { Quad(loading: base + 4 * r * plane, pointStride: plane, lanes: lanes) }
                        let (m0, m1, m2, m3) = (row(0), row(1), row(2), row(3))
                        // Aᵀ M (two rows of four), then times A: y[i][j] for four tiles.
                        let top = m0 + m1 + m2
                        let bottom = m1 - m2 - m3
                        var y = Quad(
                            top.x0 + top.x1 + top.x2, top.x1 - top.x2 - top.x3,
                            bottom.x0 + bottom.x1 + bottom.x2, bottom.x1 - bottom.x2 - bottom.x3)
                        y = y.adding(offset)
                        if relu, residualMap == nil { y = y.rectified() }
                        let values = (y.x0, y.x1, y.x2, y.x3)
                        for i in 0..<2 where 2 * ty + i < outputHeight {
                            let at = (2 * ty + i) * outputWidth
                            let (even, odd) = i == 0 ? (values.0, values.1) : (values.2, values.3)
                            func store(_ value: Float, _ w: Int) {
                                guard let residualMap else { return map[at + w] = value }
                                let sum = value + residualMap[at + w]
                                map[at + w] = relu ? max(sum, 0) : sum
                            }
                            for lane in 0..<lanes {
                                let w = 2 * (tx + lane)
                                store(even[lane], w)
                                if w + 1 < outputWidth { store(odd[lane], w + 1) }
                            }
                        }
                        done += lanes
                    }
                }
            }
        }
    }
}

/// Four 4-lane vectors: a row of a 4×4 tile for four tiles at once (lane = tile).
private struct Quad {
    var x0, x1, x2, x3: SIMD4<Float>

    init(_ x0: SIMD4<Float>, _ x1: SIMD4<Float>, _ x2: SIMD4<Float>, _ x3: SIMD4<Float>) {
        (self.x0, self.x1, self.x2, self.x3) = (x0, x1, x2, x3)
    }

    /// Reads four points `pointStride` apart, `lanes` tiles each.
    init(loading p: UnsafePointer<Float>, pointStride: Int, lanes: Int) {
        func load(_ q: UnsafePointer<Float>) -> SIMD4<Float> {
            if lanes == 4 { return UnsafeRawPointer(q).loadUnaligned(as: SIMD4<Float>.self) }
            var values = SIMD4<Float>.zero
            for lane in 0..<lanes { values[lane] = q[lane] }
            return values
        }
        self.init(load(p), load(p + pointStride), load(p + 2 * pointStride), load(p + 3 * pointStride))
    }

    /// Writes the four vectors `pointStride` apart, `lanes` tiles each.
    func store(to p: UnsafeMutablePointer<Float>, pointStride: Int, lanes: Int) {
        func store(_ value: SIMD4<Float>, _ q: UnsafeMutablePointer<Float>) {
            if lanes == 4 {
                UnsafeMutableRawPointer(q).storeBytes(of: value, as: SIMD4<Float>.self)
            } else {
                for lane in 0..<lanes { q[lane] = value[lane] }
            }
        }
        store(x0, p)
        store(x1, p + pointStride)
        store(x2, p + 2 * pointStride)
        store(x3, p + 3 * pointStride)
    }

    static func + (a: Quad, b: Quad) -> Quad { Quad(a.x0 + b.x0, a.x1 + b.x1, a.x2 + b.x2, a.x3 + b.x3) }
    static func - (a: Quad, b: Quad) -> Quad { Quad(a.x0 - b.x0, a.x1 - b.x1, a.x2 - b.x2, a.x3 - b.x3) }
    func adding(_ value: Float) -> Quad { Quad(x0 + value, x1 + value, x2 + value, x3 + value) }
    func rectified() -> Quad {
        func relu(_ x: SIMD4<Float>) -> SIMD4<Float> { x.replacing(with: 0, where: x .< 0) }
        return Quad(relu(x0), relu(x1), relu(x2), relu(x3))
    }
}

/// A Conv node's filters in Winograd's domain: the `[16, F, C]` tensor for BLAS, or the 16
/// products' left operands packed for the kernel table's products.
enum WinogradFilters {
    case transformed(Tensor)
    case packed(PackedGEMM, [PackedMatrix])
}

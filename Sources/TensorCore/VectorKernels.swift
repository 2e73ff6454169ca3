import CKernels

/// Element-wise float32 kernels at one ``KernelLevel``'s vector width, for the transcendental
/// functions and transforms whose Swift loops stay at SSE2's four lanes (the package builds for
/// the baseline CPU). Loops are split over ``Parallel``'s threads unless said otherwise.
package struct VectorKernels: @unchecked Sendable {
    private let table: UnsafePointer<sd_kernels>

    init(_ table: UnsafePointer<sd_kernels>) { self.table = table }

    /// `y[i] = erf(x[i])`, the same rational approximation as the Swift kernel (error ≤ 4.1e-7).
    package func erf(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        map(x, y, count, table.pointee.erf)
    }

    /// `y[i] = x[i] (1 + erf(x[i] / √2)) / 2`.
    package func gelu(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        map(x, y, count, table.pointee.gelu)
    }

    /// The softmax of each of `rows` contiguous rows of `extent` values, max-subtracted; `exp`
    /// within 2 ulp (Cephes' expf polynomial).
    package func softmax(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int, extent: Int) {
        guard let kernel = table.pointee.softmax_rows else { return }
        Parallel.forEach(rows, grain: max(1, 8_192 / max(extent, 1))) { range in
            kernel(x + range.lowerBound * extent, y + range.lowerBound * extent, range.count, extent)
        }
    }

    /// Layer normalization of each of `rows` contiguous rows of `size` values: statistics in double
    /// precision, `y = Float((x − mean) · inverse) · gamma + beta` with `inverse = 1/√(variance + ε)`;
    /// each row's mean and inverse go to `means` and `inverses`. Nothing when the level has no kernel.
    package func layerNorm(
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int, size: Int, gamma: UnsafePointer<Float>,
        beta: UnsafePointer<Float>, epsilon: Double, means: UnsafeMutablePointer<Float>, inverses: UnsafeMutablePointer<Float>
    ) {
        guard let kernel = table.pointee.layer_norm_rows else { return }
        Parallel.forEach(rows, grain: max(1, 8_192 / max(size, 1))) { range in
            kernel(
                x + range.lowerBound * size, y + range.lowerBound * size, range.count, size, gamma, beta, epsilon,
                means + range.lowerBound, inverses + range.lowerBound)
        }
    }

    /// `y[i] = (x[i] · (erf(x[i] / divisor) + one)) · half`: the exporters' five-node GELU in one
    /// pass, each operation rounded as the separate nodes round it.
    package func geluChain(
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int, divisor: Float, one: Float, half: Float
    ) {
        guard let kernel = table.pointee.gelu_chain else { return }
        Parallel.forEach(count, grain: 65_536) { r in
            kernel(x + r.lowerBound, y + r.lowerBound, r.count, divisor, one, half)
        }
    }

    /// `out[i] = g[i] · erf′(x[i]) = g[i] · 2/√π · e^(−x[i]²)`.
    package func erfBackward(
        _ x: UnsafePointer<Float>, gradient g: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int
    ) {
        map(x, g, out, count, table.pointee.erf_backward)
    }

    /// `out[i] = g[i] · GELU′(x[i]) = g[i] · (Φ(x) + x φ(x))`.
    package func geluBackward(
        _ x: UnsafePointer<Float>, gradient g: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int
    ) {
        map(x, g, out, count, table.pointee.gelu_backward)
    }

    /// Winograd F(2×2, 3×3)'s input transform of `count` tiles in tile row `ty` from tile column
    /// `tx` of one channel plane (`height × width`, zero outside): `(Bᵀ d B)[ξ][ν]` of each tile to
    /// `v[(4ξ + ν) · plane + t]` for tile `t` of the run. On the calling thread.
    package func winogradInput(
        _ image: UnsafePointer<Float>, height: Int, width: Int, padTop: Int, padLeft: Int, ty: Int, tx: Int, count: Int,
        into v: UnsafeMutablePointer<Float>, plane: Int
    ) {
        table.pointee.winograd_input?(
            image, Int32(height), Int32(width), Int32(padTop), Int32(padLeft), Int32(ty), Int32(tx), Int32(count), v, plane)
    }

    /// Winograd's output transform of `count` tiles (tile `t`'s 16 points at `m[point · plane + t]`)
    /// into the 2×2 blocks of one output plane at tile row `ty` from tile column `tx`, plus `bias`,
    /// plus `residual` (a plane laid out as `map`) when given, then `max(0, ·)` when `relu` (NaN
    /// kept), each step rounded. On the calling thread.
    package func winogradOutput(
        _ m: UnsafePointer<Float>, plane: Int, count: Int, into map: UnsafeMutablePointer<Float>, height: Int, width: Int,
        ty: Int, tx: Int, bias: Float, residual: UnsafePointer<Float>? = nil, relu: Bool
    ) {
        table.pointee.winograd_output?(
            m, plane, Int32(count), map, Int32(height), Int32(width), Int32(ty), Int32(tx), bias, residual, relu ? 1 : 0)
    }

    /// `count` outputs of one max-pool output row: output `j` is the largest of the taps
    /// `source[r · rowStep + stride · j + t]` for `r < rows` (at least one) and `t < kernel`, in
    /// that order, the first tap starting and a later one replacing it only when greater (so a NaN
    /// first tap stays and a later NaN is passed over: the scalar loop's bits). Stride 1 or 2;
    /// reads only the first `readable` floats of each row, which hold every tap. On the calling thread.
    package func maxPoolRow(
        _ source: UnsafePointer<Float>, rowStep: Int, rows: Int, kernel: Int, stride: Int, readable: Int,
        into out: UnsafeMutablePointer<Float>, count: Int
    ) {
        table.pointee.max_pool_row?(source, rowStep, Int32(rows), Int32(kernel), Int32(stride), readable, out, Int32(count))
    }

    private func map(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int,
        _ kernel: (@convention(c) (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void)?
    ) {
        guard let kernel else { return }
        Parallel.forEach(count, grain: 65_536) { range in
            kernel(x + range.lowerBound, y + range.lowerBound, range.count)
        }
    }

    /// ``map(_:_:_:_:)`` for kernels of two inputs.
    private func map(
        _ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ count: Int,
        _ kernel: (@convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void)?
    ) {
        guard let kernel else { return }
        Parallel.forEach(count, grain: 65_536) { range in
            kernel(x + range.lowerBound, g + range.lowerBound, out + range.lowerBound, range.count)
        }
    }
}

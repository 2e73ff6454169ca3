import TensorCore

/// How one axis is resampled: each output coordinate reads `width` input coordinates with weights
/// (one tap of weight 1 for nearest), or is outside the region of interest and takes the
/// extrapolation value (tf_crop_and_resize).
struct AxisTaps {
    let inLength: Int
    let outLength: Int
    let width: Int
    /// `outLength × width` input coordinates, already clamped into the axis.
    var indices: [Int]
    var weights: [Double]
    /// Output coordinates that take the extrapolation value; empty when none do.
    var outside: [Int]

    /// Whether the axis is copied unchanged (scale 1 with every tap on its own coordinate).
    var isIdentity: Bool {
        guard inLength == outLength, outside.isEmpty else { return false }
        for j in 0..<outLength {
            for k in 0..<width {
                let (index, weight) = (indices[j * width + k], weights[j * width + k])
                if weight != 0 && (index != j || weight != 1) { return false }
            }
        }
        return true
    }

    /// The same axis as one tap per output when every coordinate reads a single input element
    /// with weight 1 (linear sampling on the grid, or nearest), else `nil`.
    var singleTap: AxisTaps? {
        if width == 1 { return self }
        var indices = [Int](repeating: 0, count: outLength)
        for j in 0..<outLength {
            var found = false
            for k in 0..<width where weights[j * width + k] != 0 {
                guard weights[j * width + k] == 1, !found else { return nil }
                indices[j] = self.indices[j * width + k]
                found = true
            }
            guard found else { return nil }
        }
        return AxisTaps(inLength: inLength, outLength: outLength, width: 1, indices: indices,
                        weights: .init(repeating: 1, count: outLength), outside: outside)
    }
}

/// Separable resampling: one pass per resized axis over a tensor read as `[outer, length, inner]`.
enum Resampling {
    /// The extents around `axis`: elements before it and after it.
    static func split(_ shape: [Int], _ axis: Int) -> (outer: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[(axis + 1)...].reduce(1, *))
    }

    /// One interpolation pass along `axis`: `y[o, j, i] = Σ_k w[j, k] · x[o, index[j, k], i]`,
    /// the products summed in tap order (the fast path below sums in the same order, so both give
    /// the same bits).
    @_specialize(where T == Float)
    static func interpolate<T: FloatKernelScalar>(_ x: Tensor, axis: Int, taps: AxisTaps, as type: T.Type) throws -> Tensor {
        let (width, outLength) = (taps.width, taps.outLength)
        return try alongAxis(x, axis: axis, taps: taps, adjoint: false) { (input: UnsafePointer<T>, output, inner, indices, weights) in
            if inner == 1 {
                // Resampling the innermost axis: one dot product per output element.
                for j in 0..<outLength {
                    let tap = j * width
                    var value = weights[tap] * input[indices[tap]]
                    for k in 1..<max(width, 1) { value += weights[tap + k] * input[indices[tap + k]] }
                    output[j] = value
                }
                return
            }
            for j in 0..<outLength {
                let out = output + j * inner
                let tap = j * width
                let first = input + indices[tap] * inner
                let w0 = weights[tap]
                for i in 0..<inner { out[i] = w0 * first[i] }
                for k in 1..<max(width, 1) {
                    let row = input + indices[tap + k] * inner
                    let w = weights[tap + k]
                    for i in 0..<inner { out[i] += w * row[i] }
                }
            }
        }
    }

    /// The adjoint of ``interpolate(_:axis:taps:as:)``: `gx[o, index[j, k], i] += w[j, k] · g[o, j, i]`,
    /// output coordinates in order.
    @_specialize(where T == Float)
    static func scatter<T: FloatKernelScalar>(_ g: Tensor, axis: Int, taps: AxisTaps, as type: T.Type) throws -> Tensor {
        let (width, outLength) = (taps.width, taps.outLength)
        return try alongAxis(g, axis: axis, taps: taps, adjoint: true) { (gradient: UnsafePointer<T>, output, inner, indices, weights) in
            for j in 0..<outLength {
                let row = gradient + j * inner
                for k in 0..<width {
                    let out = output + indices[j * width + k] * inner
                    let w = weights[j * width + k]
                    for i in 0..<inner { out[i] += w * row[i] }
                }
            }
        }
    }

    /// What ``interpolate`` and its adjoint share: `source` read as `[outer, length, inner]`
    /// blocks, a new tensor of `[outer, length′, inner]` blocks (the taps' output length, or their
    /// input length for the adjoint, whose sums start from zero), the weights as `T`, and `body`
    /// filling one block at a time. Each block writes only its own rows, so blocks split over
    /// threads.
    private static func alongAxis<T: FloatKernelScalar>(
        _ source: Tensor, axis: Int, taps: AxisTaps, adjoint: Bool,
        _ body: (_ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<T>, _ inner: Int,
                 _ indices: UnsafeBufferPointer<Int>, _ weights: UnsafeBufferPointer<T>) -> Void
    ) throws -> Tensor {
        var shape = source.shape
        shape[axis] = adjoint ? taps.inLength : taps.outLength
        let result = adjoint ? try Tensor(zeros: source.dtype, shape: shape) : try Tensor(uninitialized: source.dtype, shape: shape)
        let (outer, inner) = split(source.shape, axis)
        let weights = taps.weights.map { T($0) }
        let (sourceLength, resultLength) = (source.shape[axis], shape[axis])
        let from = source.unsafeElements(as: T.self)
        let to = result.unsafeMutableElements(as: T.self)
        withExtendedLifetime(source) {
            taps.indices.withUnsafeBufferPointer { indices in
                weights.withUnsafeBufferPointer { weights in
                    Parallel.forEach(outer, grain: max(1, 8_192 / max(taps.outLength * inner * taps.width, 1))) { blocks in
                        for o in blocks {
                            body(
                                from.address(at: o * sourceLength * inner, count: sourceLength * inner),
                                to.address(at: o * resultLength * inner, count: resultLength * inner), inner, indices, weights)
                        }
                    }
                }
            }
        }
        return result
    }

    /// Nearest sampling along `axis` for any element type: `y[o, j, i] = x[o, index[j], i]`,
    /// elements moved as same-sized unsigned integers.
    static func gather(_ x: Tensor, axis: Int, taps: AxisTaps) throws -> Tensor {
        var shape = x.shape
        shape[axis] = taps.outLength
        let y = try Tensor(uninitialized: x.dtype, shape: shape)
        let (outer, inner) = split(x.shape, axis)
        let (inLength, outLength, width) = (taps.inLength, taps.outLength, taps.width)
        func run<E>(_ type: E.Type) {
            let source = x.unsafeElements(bitsAs: E.self)
            let target = y.unsafeMutableElements(bitsAs: E.self)
            taps.indices.withUnsafeBufferPointer { indices in
                for o in 0..<outer {
                    let input = source.address(at: o * inLength * inner, count: inLength * inner)
                    let output = target.address(at: o * outLength * inner, count: outLength * inner)
                    if inner == 1 {
                        for j in 0..<outLength { output[j] = input[indices[j * width]] }
                    } else {
                        for j in 0..<outLength { (output + j * inner).update(from: input + indices[j * width] * inner, count: inner) }
                    }
                }
            }
        }
        withExtendedLifetime(x) { moving(x.dtype, run(UInt8.self), run(UInt16.self), run(UInt32.self), run(UInt64.self)) }
        return y
    }

    /// Sets every element whose coordinate on some axis is outside the region to `value` (one
    /// element of the tensor's type), as tf_crop_and_resize asks.
    static func fillOutside(_ y: Tensor, taps: [AxisTaps?], value: Tensor) {
        let size = y.dtype.byteSize
        for (axis, axisTaps) in taps.enumerated() {
            guard let axisTaps, !axisTaps.outside.isEmpty else { continue }
            let (outer, inner) = split(y.shape, axis)
            withExtendedLifetime(value) {
                for o in 0..<outer {
                    for j in axisTaps.outside {
                        let start = y.storage.base + ((o * axisTaps.outLength + j) * inner) * size
                        for i in 0..<inner { (start + i * size).copyMemory(from: value.storage.base, byteCount: size) }
                    }
                }
            }
        }
    }

    /// Zeroes the gradient of every extrapolated element (it does not depend on the input).
    static func clearOutside(_ g: Tensor, taps: [AxisTaps?]) throws -> Tensor {
        guard taps.contains(where: { !($0?.outside.isEmpty ?? true) }) else { return g }
        let copy = try stridedCopy(g, shape: g.shape, strides: Shape.strides(g.shape))
        fillOutside(copy, taps: taps, value: try Tensor(zeros: g.dtype, shape: []))
        return copy
    }

    // MARK: - Float32 NCHW fast path

    /// Whether ``planar(_:rows:columns:)`` applies: float32 `[N, C, H, W]` with N and C unchanged and
    /// at most two taps per output on H and W (nearest, or linear without a widened filter).
    static func planarApplies(_ x: Tensor, _ taps: [AxisTaps?]) -> Bool {
        x.dtype == .float32 && x.rank == 4 && taps[0] == nil && taps[1] == nil
            && taps[2...].allSatisfy { ($0?.width ?? 1) <= 2 }
    }

    /// Resamples each `[H, W]` plane in one go, planes over threads: rows through a buffer of the
    /// blended input rows, with the same products in the same order as two ``interpolate`` passes
    /// (H, then W), so the result is bit for bit theirs.
    static func planar(_ x: Tensor, rows: AxisTaps, columns: AxisTaps) throws -> Tensor {
        let (inW, outW) = (x.shape[3], columns.outLength)
        let (rowWidth, columnWidth) = (rows.width, columns.width)
        let shape = [x.shape[0], x.shape[1], rows.outLength, outW]
        return try overPlanes(x, to: shape, adjoint: false, rows: rows, columns: columns) { input, output, blended, rowWeights, columnWeights in
            for j in 0..<rows.outLength {
                let tap = j * rowWidth
                let first = input + rows.indices[tap] * inW
                let w0 = rowWeights[tap]
                for i in 0..<inW { blended[i] = w0 * first[i] }
                if rowWidth == 2 {
                    let second = input + rows.indices[tap + 1] * inW
                    let w1 = rowWeights[tap + 1]
                    for i in 0..<inW { blended[i] += w1 * second[i] }
                }
                let out = output + j * outW
                if columnWidth == 2 {
                    for c in 0..<outW {
                        var value = columnWeights[2 * c] * blended[columns.indices[2 * c]]
                        value += columnWeights[2 * c + 1] * blended[columns.indices[2 * c + 1]]
                        out[c] = value
                    }
                } else {
                    for c in 0..<outW { out[c] = columnWeights[c] * blended[columns.indices[c]] }
                }
            }
        }
    }

    /// The adjoint of ``planar(_:rows:columns:)``, in the order of the two ``scatter`` passes it
    /// stands for (W, then H), planes over threads.
    static func planarGradient(_ g: Tensor, inputShape: [Int], rows: AxisTaps, columns: AxisTaps) throws -> Tensor {
        let (inW, outW) = (inputShape[3], columns.outLength)
        let (rowWidth, columnWidth) = (rows.width, columns.width)
        return try overPlanes(g, to: inputShape, adjoint: true, rows: rows, columns: columns) { gradient, output, spread, rowWeights, columnWeights in
            for j in 0..<rows.outLength {
                // The row's gradient spread back over the input columns.
                spread.update(repeating: 0, count: inW)
                let row = gradient + j * outW
                for c in 0..<outW {
                    for k in 0..<columnWidth {
                        spread[columns.indices[c * columnWidth + k]] += columnWeights[c * columnWidth + k] * row[c]
                    }
                }
                for k in 0..<rowWidth {
                    let out = output + rows.indices[j * rowWidth + k] * inW
                    let w = rowWeights[j * rowWidth + k]
                    for i in 0..<inW { out[i] += w * spread[i] }
                }
            }
        }
    }

    /// What ``planar(_:rows:columns:)`` and its adjoint share: a new float32 tensor of `shape`
    /// (zeroed for the adjoint, which accumulates), the taps' weights as float32, and `body` run on
    /// each plane of `source` and the result with a scratch row as wide as the input's, planes
    /// over threads.
    private static func overPlanes(
        _ source: Tensor, to shape: [Int], adjoint: Bool, rows: AxisTaps, columns: AxisTaps,
        _ body: (_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ scratch: UnsafeMutablePointer<Float>,
                 _ rowWeights: [Float], _ columnWeights: [Float]) -> Void
    ) throws -> Tensor {
        let result = adjoint ? try Tensor(zeros: .float32, shape: shape) : try Tensor(uninitialized: .float32, shape: shape)
        let (sourcePlane, resultPlane) = (source.shape[2] * source.shape[3], shape[2] * shape[3])
        let inW = adjoint ? shape[3] : source.shape[3]
        let rowWeights = rows.weights.map { Float($0) }
        let columnWeights = columns.weights.map { Float($0) }
        let from = source.unsafeElements(as: Float.self)
        let to = result.unsafeMutableElements(as: Float.self)
        try withExtendedLifetime(source) {
            try Parallel.tryForEach(shape[0] * shape[1], grain: max(1, 16_384 / max(rows.outLength * columns.outLength, 1))) { range in
                try BufferPool.withScratch(Float.self, count: inW) { scratch in
                    for plane in range {
                        let input = from.address(at: plane * sourcePlane, count: sourcePlane)
                        body(input, to.address(at: plane * resultPlane, count: resultPlane), scratch, rowWeights, columnWeights)
                    }
                }
            }
        }
        return result
    }
}

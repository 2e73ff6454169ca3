import ONNXModel
import TensorCore

// Pooling over 1 to 3 spatial axes: MaxPool (with optional indices), AveragePool, and the global pools.

extension OpRegistry {
    mutating func registerPooling() {
        register("MaxPool") { context in
            let order = try context.attribute("storage_order", default: 0)
            guard order == 0 || order == 1 else { throw context.invalid("storage_order", "must be 0 or 1, got \(order)") }
            let outputs = context.node.outputs
            return Pool(
                geometry: try WindowGeometry(context, kernelRequired: true), kind: .max(columnMajor: order == 1),
                producesIndices: outputs.count > 1 && !outputs[1].isEmpty)
        }
        register("AveragePool") { context in
            Pool(
                geometry: try WindowGeometry(context, kernelRequired: true),
                kind: .average(includePad: try context.attribute("count_include_pad", default: 0) != 0))
        }
        register("GlobalAveragePool") { _ in GlobalPool(average: true) }
        register("GlobalMaxPool") { _ in GlobalPool(average: false) }
    }
}

/// `MaxPool` and `AveragePool`.
struct Pool: Operator {
    enum Kind {
        /// Max pooling; `columnMajor` is `storage_order = 1` for the indices output.
        case max(columnMajor: Bool)
        /// Average pooling; `includePad` counts padded positions in the divisor.
        case average(includePad: Bool)
    }

    let geometry: WindowGeometry
    let kind: Kind
    /// Whether the node asks for MaxPool's second output; the indices are computed only then.
    var producesIndices = false

    /// Every output element's window, padding included.
    func multiplyAdds(_ inputs: OpInputs) throws -> Int? {
        let x = try inputs.required(0).shape
        guard x.count >= 3, x.count <= 5 else { return nil }
        let window = try geometry.resolve(spatial: Array(x[2...]))
        return WorkBudget.product(x[..<2] + window.output + window.kernel)
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        guard x.rank >= 3, x.rank <= 5 else { throw OpError("pooling needs an input of rank 3 to 5, got \(x.shape)") }
        let window = try geometry.resolve(spatial: Array(x.shape[2...]))
        let shape = Array(x.shape[..<2]) + window.output
        switch kind {
        case .max(let columnMajor):
            if !producesIndices, x.dtype == .float32, window.as3D.input[0] == 1 {
                return [try maxPool2D(x, window: window.as3D, shape: shape)]
            }
            func run<T: ArithmeticScalar>(_ type: T.Type) throws -> [Tensor?] {
                let (values, indices) = try maxPool(x, as: T.self, window: window.as3D, shape: shape, columnMajor: columnMajor)
                return [values, indices]
            }
            return try withArithmeticType(x.dtype, "MaxPool") { try run($0) }
        case .average(let includePad):
            func run<T: FloatKernelScalar>(_ type: T.Type) throws -> [Tensor?] {
                [try averagePool(x, as: T.self, window: window.as3D, shape: shape, includePad: includePad)]
            }
            return try withFloatType(x.dtype, "AveragePool") { try run($0) }
        }
    }

    /// Visits the output positions of one (n, c) plane with the valid input offsets of each window.
    static func forEachWindow(
        _ g: WindowGeometry.Resolved, _ body: (_ output: Int, _ visit: ((Int, Int, Int, Int) -> Void) -> Int) -> Void
    ) {
        var output = 0
        for od in 0..<g.output[0] {
            for oh in 0..<g.output[1] {
                for ow in 0..<g.output[2] {
                    let origin = (od * g.strides[0] - g.padBegin[0], oh * g.strides[1] - g.padBegin[1], ow * g.strides[2] - g.padBegin[2])
                    // `visit` calls its closure with (offset, d, h, w) for in-bounds taps and returns
                    // the number of taps inside the padded extent, for count_include_pad.
                    body(output) { tap in
                        var padded = 0
                        for kd in 0..<g.kernel[0] {
                            let d = origin.0 + kd * g.dilations[0]
                            guard d >= -g.padBegin[0], d < g.input[0] + g.padEnd[0] else { continue }
                            for kh in 0..<g.kernel[1] {
                                let h = origin.1 + kh * g.dilations[1]
                                guard h >= -g.padBegin[1], h < g.input[1] + g.padEnd[1] else { continue }
                                for kw in 0..<g.kernel[2] {
                                    let w = origin.2 + kw * g.dilations[2]
                                    guard w >= -g.padBegin[2], w < g.input[2] + g.padEnd[2] else { continue }
                                    padded += 1
                                    if d >= 0, d < g.input[0], h >= 0, h < g.input[1], w >= 0, w < g.input[2] {
                                        tap((d * g.input[1] + h) * g.input[2] + w, d, h, w)
                                    }
                                }
                            }
                        }
                        return padded
                    }
                    output += 1
                }
            }
        }
    }

    private func maxPool<T: ArithmeticScalar>(
        _ x: Tensor, as type: T.Type, window g: WindowGeometry.Resolved, shape: [Int], columnMajor: Bool
    ) throws -> (Tensor, Tensor) {
        let planes = x.shape[0] * x.shape[1]
        let inputSize = g.input.reduce(1, *)
        let outputSize = g.output.reduce(1, *)
        let lowest = T.isIntegral ? T(int64Value: Int64.min) : T(doubleValue: -.infinity)
        let indices = try Tensor(zeros: .int64, shape: shape)
        let values = try x.withUnsafeBuffer(as: T.self) { input in
            try Tensor.build(T.self, shape: shape) { out in
                let index = indices.unsafeMutableElements(as: Int64.self)
                for plane in 0..<planes {
                    let base = plane * inputSize
                    Pool.forEachWindow(g) { o, visit in
                        var best = lowest
                        var bestIndex = -1
                        _ = visit { offset, d, h, w in
                            let value = input[base + offset]
                            if bestIndex < 0 || value > best {
                                best = value
                                bestIndex = columnMajor ? d + g.input[0] * (h + g.input[1] * w) : offset
                            }
                        }
                        out[plane * outputSize + o] = best
                        index[plane * outputSize + o] = Int64(base + max(bestIndex, 0))
                    }
                }
            }
        }
        return (values, indices)
    }

    /// Max pooling over one or two spatial axes without indices: planes split over threads, and
    /// each window's valid taps found once per row and column instead of per tap.
    private func maxPool2D(_ x: Tensor, window g: WindowGeometry.Resolved, shape: [Int]) throws -> Tensor {
        let planes = x.shape[0] * x.shape[1]
        let (inH, inW, outH, outW) = (g.input[1], g.input[2], g.output[1], g.output[2])
        let output = try Tensor(uninitialized: .float32, shape: shape)
        /// The taps `k` of a window starting at `origin` that land inside `0..<extent`.
        func taps(_ origin: Int, _ kernel: Int, _ dilation: Int, _ extent: Int) -> Range<Int> {
            let first = origin >= 0 ? 0 : (-origin + dilation - 1) / dilation
            let last = extent - 1 - origin < 0 ? -1 : min(kernel - 1, (extent - 1 - origin) / dilation)
            return first..<max(first, last + 1)
        }
        // Geometry in locals, and each output column's valid taps computed once for all planes.
        let (strideH, strideW, dilationH, dilationW) = (g.strides[1], g.strides[2], g.dilations[1], g.dilations[2])
        let (padTop, padLeft, kernelH, kernelW) = (g.padBegin[1], g.padBegin[2], g.kernel[1], g.kernel[2])
        let columnTaps = (0..<outW).map { ow in taps(ow * strideW - padLeft, kernelW, dilationW, inW) }
        let rowTaps = (0..<outH).map { oh in taps(oh * strideH - padTop, kernelH, dilationH, inH) }
        // Our vector kernel takes every column whose taps lie inside the row in one call; the
        // portable level's Swift loop takes blocks of sixteen starting in `vectorStarts`.
        let vector = Kernels.current.vector
        let vectorStarts = Self.vectorStarts(
            outW: outW, inW: inW, kernel: kernelW, stride: strideW, dilation: dilationW, padLeft: padLeft)
        let innerColumns = Self.innerColumns(
            outW: outW, inW: inW, kernel: kernelW, stride: strideW, dilation: dilationW, padLeft: padLeft)
        withExtendedLifetime(x) {
            let input = x.unsafeElements(as: Float.self)
            let out = output.unsafeMutableElements(as: Float.self)
            columnTaps.withUnsafeBufferPointer { columnTaps in
                rowTaps.withUnsafeBufferPointer { rowTaps in
                    Parallel.forEach(planes, grain: max(1, 32_768 / max(inH * inW, 1))) { range in
                        for plane in range {
                            let source = input.address(at: plane * inH * inW, count: inH * inW)
                            let destination = out.address(at: plane * outH * outW, count: outH * outW)
                            for oh in 0..<outH {
                                let rows = rowTaps[oh]
                                let top = source + (oh * strideH - padTop) * inW
                                // Many columns at a time where every column tap is inside the row.
                                var vectorDone = 0..<0
                                if let vector, !rows.isEmpty, !innerColumns.isEmpty {
                                    let start = innerColumns.lowerBound * strideW - padLeft
                                    vector.maxPoolRow(
                                        top + rows.lowerBound * dilationH * inW + start, rowStep: dilationH * inW,
                                        rows: rows.count, kernel: kernelW, stride: strideW, readable: inW - start,
                                        into: destination + oh * outW + innerColumns.lowerBound, count: innerColumns.count)
                                    vectorDone = innerColumns
                                } else if vector == nil, !rows.isEmpty {
                                    var vectorEnd = vectorStarts.lowerBound
                                    while vectorEnd < vectorStarts.upperBound {
                                        Self.maxRow16(
                                            top + vectorEnd * strideW - padLeft, rows: rows, rowStep: dilationH * inW,
                                            kernel: kernelW, stride: strideW,
                                            into: destination + oh * outW + vectorEnd)
                                        vectorEnd += 16
                                    }
                                    vectorDone = vectorStarts.lowerBound..<vectorEnd
                                }
                                for ow in 0..<outW where !vectorDone.contains(ow) {
                                    let columns = columnTaps[ow]
                                    // The first valid tap starts the maximum, as in the general
                                    // kernel; an all-padding window (impossible with ONNX's pad
                                    // limits) gives -inf.
                                    guard !rows.isEmpty, !columns.isEmpty else {
                                        destination[oh * outW + ow] = -.infinity
                                        continue
                                    }
                                    let corner = top + ow * strideW - padLeft
                                    var best = corner[rows.lowerBound * dilationH * inW + columns.lowerBound * dilationW]
                                    for kh in rows {
                                        let row = corner + kh * dilationH * inW
                                        for kw in columns {
                                            let value = row[kw * dilationW]
                                            if value > best { best = value }
                                        }
                                    }
                                    destination[oh * outW + ow] = best
                                }
                            }
                        }
                    }
                }
            }
        }
        return output
    }

    /// The output columns that may start a block of sixteen for
    /// ``maxRow16(_:rows:rowStep:kernel:stride:into:)``: every value its vector loads read lies
    /// inside the input row, and the block inside the output row. Stride 1 or 2 without column
    /// dilation; otherwise, or when no block fits, an empty range.
    static func vectorStarts(outW: Int, inW: Int, kernel: Int, stride: Int, dilation: Int, padLeft: Int) -> Range<Int> {
        guard stride == 1 || stride == 2, dilation == 1, kernel >= 1 else { return 0..<0 }
        // Column ow's taps start at ow·stride − padLeft; the load for tap kw reads 16·stride values
        // from there + kw, so a block starting at ow reads up to ow·stride − padLeft + reach − 1.
        let first = (padLeft + stride - 1) / stride
        let reach = kernel - 1 + 16 * stride
        let last = min((inW - reach + padLeft) / stride, outW - 16)
        return inW >= reach && first <= last ? first..<last + 1 : 0..<0
    }

    /// The output columns whose taps all lie inside the input row, for the kernel levels'
    /// ``VectorKernels/maxPoolRow(_:rowStep:rows:kernel:stride:readable:into:count:)``: stride 1
    /// or 2 without column dilation; otherwise, or when no column qualifies, an empty range.
    static func innerColumns(outW: Int, inW: Int, kernel: Int, stride: Int, dilation: Int, padLeft: Int) -> Range<Int> {
        guard stride == 1 || stride == 2, dilation == 1, kernel >= 1, inW - kernel + padLeft >= 0 else { return 0..<0 }
        // Column ow's taps are ow·stride − padLeft through ow·stride − padLeft + kernel − 1.
        let first = (padLeft + stride - 1) / stride
        let last = min((inW - kernel + padLeft) / stride, outW - 1)
        return first <= last ? first..<last + 1 : 0..<0
    }

    /// Sixteen outputs of one output row of a float32 max pool, from `corner` (the first column's
    /// first tap in row 0 of the window): for each row in `rows` (offset `rowStep` apart) and each
    /// of `kernel` column taps, the lanes' values at `stride` apart. The taps are visited in the
    /// scalar loop's order with its comparison (`>`: the first tap starts, a NaN elsewhere is
    /// passed over), so the results are the same bits.
    @inline(__always)
    static func maxRow16(
        _ corner: UnsafePointer<Float>, rows: Range<Int>, rowStep: Int, kernel: Int, stride: Int,
        into destination: UnsafeMutablePointer<Float>
    ) {
        func lanes(_ at: UnsafePointer<Float>) -> SIMD16<Float> {
            stride == 1
                ? UnsafeRawPointer(at).loadUnaligned(as: SIMD16<Float>.self)
                : UnsafeRawPointer(at).loadUnaligned(as: SIMD32<Float>.self).evenHalf
        }
        var best = lanes(corner + rows.lowerBound * rowStep)
        for kh in rows {
            let row = corner + kh * rowStep
            for kw in 0..<kernel {
                let value = lanes(row + kw)
                best.replace(with: value, where: value .> best)
            }
        }
        UnsafeMutableRawPointer(destination).storeBytes(of: best, as: SIMD16<Float>.self)
    }

    private func averagePool<T: FloatKernelScalar>(
        _ x: Tensor, as type: T.Type, window g: WindowGeometry.Resolved, shape: [Int], includePad: Bool
    ) throws -> Tensor {
        let planes = x.shape[0] * x.shape[1]
        let inputSize = g.input.reduce(1, *)
        let outputSize = g.output.reduce(1, *)
        return try x.withUnsafeBuffer(as: T.self) { input in
            try Tensor.build(T.self, shape: shape) { out in
                for plane in 0..<planes {
                    let base = plane * inputSize
                    Pool.forEachWindow(g) { o, visit in
                        var sum = T.zero
                        var valid = 0
                        let padded = visit { offset, _, _, _ in
                            sum += input[base + offset]
                            valid += 1
                        }
                        let divisor = includePad ? padded : valid
                        out[plane * outputSize + o] = divisor > 0 ? sum / T(divisor) : 0
                    }
                }
            }
        }
    }
}

/// `GlobalAveragePool` / `GlobalMaxPool`: one value per (n, c) over all spatial positions.
struct GlobalPool: Operator {
    let average: Bool

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        guard x.rank >= 2 else { throw OpError("global pooling needs an input of rank 2 or more, got \(x.shape)") }
        let planes = x.shape[0] * x.shape[1]
        let size = x.shape[2...].reduce(1, *)
        let shape = Array(x.shape[..<2]) + Array(repeating: 1, count: x.rank - 2)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try x.withUnsafeBuffer(as: T.self) { input in
                try Tensor.build(T.self, shape: shape) { out in
                    for plane in 0..<planes {
                        let values = input[plane * size..<(plane + 1) * size]
                        if average {
                            out[plane] = values.reduce(T.zero, +) / T(max(size, 1))
                        } else {
                            out[plane] = values.max() ?? T.zero
                        }
                    }
                }
            }
        }
        return [try withFloatType(x.dtype, average ? "GlobalAveragePool" : "GlobalMaxPool") { try run($0) }]
    }
}

// MARK: - Backward

extension Pool: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues {
        if case .max = kind { return .inputs(0) }
        return .nothing
    }

    /// Max pooling routes each gradient to the window's first maximum (PyTorch's choice on ties);
    /// average pooling spreads it evenly over the positions the divisor counted.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let shape = try step.inputShape(0)
        let g3 = try geometry.resolve(spatial: Array(shape[2...])).as3D
        let planes = shape[0] * shape[1]
        let inputSize = g3.input.reduce(1, *)
        let outputSize = g3.output.reduce(1, *)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            let x = try { if case .max = kind { return try step.input(0) } else { return nil } }() as Tensor?
            return try g.withUnsafeBuffer(as: T.self) { gradient in
                try Tensor.build(T.self, shape: shape) { out in
                    let input = x?.unsafeElements(as: T.self)
                    for plane in 0..<planes {
                        let base = plane * inputSize
                        Pool.forEachWindow(g3) { o, visit in
                            let incoming = gradient[plane * outputSize + o]
                            switch kind {
                            case .max:
                                guard let input else { return }
                                var best = -T.infinity
                                var bestOffset = -1
                                _ = visit { offset, _, _, _ in
                                    if bestOffset < 0 || input[base + offset] > best {
                                        best = input[base + offset]
                                        bestOffset = offset
                                    }
                                }
                                if bestOffset >= 0 { out[base + bestOffset] += incoming }
                            case .average(let includePad):
                                var taps: [Int] = []
                                let padded = visit { offset, _, _, _ in taps.append(offset) }
                                let divisor = includePad ? padded : taps.count
                                guard divisor > 0 else { return }
                                let share = incoming / T(divisor)
                                for offset in taps { out[base + offset] += share }
                            }
                        }
                    }
                }
            }
        }
        return [try withExtendedLifetime(step.inputs) { try withFloatType(g.dtype, "pooling") { try run($0) } }]
    }
}

extension GlobalPool: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { average ? .nothing : .inputs(0) }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let shape = try step.inputShape(0)
        let planes = shape[0] * shape[1]
        let size = shape[2...].reduce(1, *)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            let gradient = try g.scalars(as: T.self)
            if average {
                return try Tensor.build(T.self, shape: shape) { out in
                    for plane in 0..<planes {
                        let share = gradient[plane] / T(max(size, 1))
                        for i in plane * size..<(plane + 1) * size { out[i] = share }
                    }
                }
            }
            let input = try step.input(0).scalars(as: T.self)
            return try Tensor.build(T.self, shape: shape) { out in
                for plane in 0..<planes where size > 0 {
                    let values = input[plane * size..<(plane + 1) * size]
                    if let best = values.indices.max(by: { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) }) {
                        out[best] = gradient[plane]
                    }
                }
            }
        }
        return [try withFloatType(g.dtype, average ? "GlobalAveragePool" : "GlobalMaxPool") { try run($0) }]
    }
}

import ONNXModel
import TensorCore

// ConvTranspose over 1 to 3 spatial axes: the input gradient of a convolution, computed with the
// same products and the same col2im as Conv's backward pass.

extension OpRegistry {
    mutating func registerConvTranspose() {
        register("ConvTranspose") { context in try ConvTranspose(context) }
        widenForHalfPrecision(["ConvTranspose"])
    }
}

/// `ConvTranspose` (opsets 1, 11, 22): `Y = col2im(Wᵀ X) + B` per sample and group, with weights
/// `W` of shape `[C_in, C_out / group, k…]`.
///
/// The output extent of a spatial axis is `stride·(in − 1) + output_padding + (k − 1)·dilation + 1
/// − pad_begin − pad_end`. With `output_shape` (or `auto_pad` SAME_*, which asks for `in·stride`)
/// the pads are derived from the total `stride·(in − 1) + output_padding + (k − 1)·dilation + 1 −
/// output_shape`: SAME_UPPER puts the odd element at the end, every other setting at the start,
/// as the spec's equations and onnxruntime do; a negative total pads nothing and leaves the extra
/// outputs at the bias.
struct ConvTranspose: DifferentiableOperator {
    let geometry: WindowGeometry
    let groups: Int
    let outputPadding: [Int]?
    let outputShape: [Int]?

    init(_ context: OpContext) throws {
        geometry = try WindowGeometry(context, kernelRequired: false)
        groups = try context.attribute("group", default: 1)
        guard groups >= 1 else { throw context.invalid("group", "must be at least 1, got \(groups)") }
        outputPadding = try context.attribute("output_padding")
        outputShape = try context.attribute("output_shape")
        let limit = Int(Int32.max)
        if let outputPadding, outputPadding.contains(where: { $0 < 0 || $0 > limit }) {
            throw context.invalid("output_padding", "values must be in 0...\(limit), got \(outputPadding)")
        }
        if let outputShape, outputShape.contains(where: { $0 < 0 }) {
            throw context.invalid("output_shape", "values must not be negative, got \(outputShape)")
        }
    }

    /// Each input element times each filter tap of its group.
    func multiplyAdds(_ inputs: OpInputs) throws -> Int? {
        let (x, w) = (try inputs.required(0).shape, try inputs.required(1).shape)
        guard x.count >= 3, w.count >= 2 else { return nil }
        return WorkBudget.product(x + w.dropFirst())
    }

    /// The sizes of one transposed convolution, checked against each other.
    struct Plan {
        let batch, inChannels, outChannels: Int
        /// The convolution whose input gradient this is: its input is our output, its output our input.
        let window: WindowGeometry.Resolved
        let inputSize, outputSize, inPerGroup, outPerGroup, patch, tile: Int
        let outputShape: [Int]
    }

    func plan(input: [Int], weights: [Int]) throws -> Plan {
        guard input.count >= 3, input.count <= 5, weights.count == input.count else {
            throw OpError("ConvTranspose needs input and weights of rank 3 to 5 alike, got \(input) and \(weights)")
        }
        let rank = input.count - 2
        let (batch, inChannels) = (input[0], input[1])
        guard weights[0] == inChannels, inChannels % groups == 0 else {
            throw OpError("weights \(weights) with \(groups) group(s) do not fit \(inChannels) input channels")
        }
        let kernel = Array(weights[2...])
        guard kernel.allSatisfy({ $0 >= 1 && $0 <= Int(Int32.max) }) else {
            throw OpError("weights' spatial extents \(kernel) must be in 1...\(Int32.max)")
        }
        try geometry.checkKernel(kernel)
        let (strides, dilations) = try geometry.steps(rank: rank)
        let padding = outputPadding ?? Array(repeating: 0, count: rank)
        guard padding.count == rank else { throw OpError("output_padding \(padding) does not match \(rank) spatial axes") }
        // output_shape may also list N and C, as some exporters write it.
        let requested = outputShape.map { $0.count == rank + 2 ? Array($0[2...]) : $0 }
        if let requested, requested.count != rank {
            throw OpError("output_shape \(outputShape ?? []) does not match \(rank) spatial axes")
        }
        var spatial = [Int](repeating: 0, count: rank)
        // Explicit pads apply only where no output size is asked for; the others are derived below.
        let none = [Int](repeating: 0, count: rank)
        var (padBegin, padEnd) = requested == nil ? try geometry.explicitPads(rank: rank) : (none, none)
        for axis in 0..<rank {
            // Attributes and kernel extents are below 2³¹, so only the products can overflow.
            let (extent, overflow1) = (kernel[axis] - 1).multipliedReportingOverflow(by: dilations[axis])
            let (span, overflow2) = (input[axis + 2] - 1).multipliedReportingOverflow(by: strides[axis])
            let (full, overflow3) = span.addingReportingOverflow(extent + 1 + padding[axis])
            guard !overflow1, !overflow2, !overflow3, full >= 0 else {
                throw OpError("spatial axis \(axis) of extent \(input[axis + 2]) gives an output extent that overflows")
            }
            let target: Int?
            if let requested {
                target = requested[axis]
            } else if geometry.autoPad == .sameUpper || geometry.autoPad == .sameLower {
                let (same, overflow) = input[axis + 2].multipliedReportingOverflow(by: strides[axis])
                guard !overflow else { throw OpError("spatial axis \(axis) gives an output extent that overflows") }
                target = same
            } else {
                target = nil
            }
            if let target {
                // A longer output than the window covers is kept only while a convolution of it
                // would still give the input's extent (onnxruntime's check); the rest is bias.
                if requested != nil, full < target, target < extent + 1 || (target - extent - 1) / strides[axis] + 1 != input[axis + 2] {
                    throw OpError("output_shape \(target) on spatial axis \(axis) is inconsistent with input extent \(input[axis + 2])")
                }
                let total = max(0, full - target)
                padBegin[axis] = geometry.autoPad == .sameUpper ? total / 2 : total - total / 2
                padEnd[axis] = total - padBegin[axis]
                spatial[axis] = target
            } else {
                spatial[axis] = full - padBegin[axis] - padEnd[axis]
                guard spatial[axis] >= 0 else {
                    throw OpError("pads \(padBegin[axis]), \(padEnd[axis]) exceed the output extent \(full) of spatial axis \(axis)")
                }
            }
        }
        let outChannels = weights[1] * groups
        let outputShape = [batch, outChannels] + spatial
        _ = try Shape.elementCount(outputShape)
        let window = WindowGeometry.Resolved(
            input: spatial, output: Array(input[2...]), kernel: kernel, strides: strides, dilations: dilations,
            padBegin: padBegin, padEnd: padEnd
        ).as3D
        let patch = weights[1] * kernel.reduce(1, *)
        let inputSize = window.output.reduce(1, *)
        return Plan(
            batch: batch, inChannels: inChannels, outChannels: outChannels, window: window, inputSize: inputSize,
            outputSize: window.input.reduce(1, *), inPerGroup: inChannels / groups, outPerGroup: weights[1], patch: patch,
            // Tile the input positions so the column buffer stays near 8 MB whatever the layer.
            tile: max(16, min(inputSize, (1 << 21) / max(patch, 1))), outputShape: outputShape)
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        let bias = inputs[2]
        guard w.dtype == x.dtype, bias?.dtype ?? x.dtype == x.dtype else {
            throw OpError("ConvTranspose input, weights and bias must share one type, got \(x.dtype), \(w.dtype), \(bias?.dtype ?? x.dtype)")
        }
        let p = try plan(input: x.shape, weights: w.shape)
        if let bias, bias.count != p.outChannels {
            throw OpError("bias has \(bias.count) values for \(p.outChannels) output channels")
        }
        // col2im accumulates, so the output starts at zero.
        let output = try Tensor(zeros: x.dtype, shape: p.outputShape)
        func run<T: GEMMScalar>(_ type: T.Type) throws {
            let (px, pw, py) = (x.unsafeElements(as: T.self), w.unsafeElements(as: T.self), output.unsafeMutableElements(as: T.self))
            let kernelVolume = p.patch / max(p.outPerGroup, 1)
            try BufferPool.withScratch(T.self, count: p.patch * p.tile) { columns in
                for n in 0..<p.batch {
                    for group in 0..<groups {
                        let source = px.address(
                            at: (n * p.inChannels + group * p.inPerGroup) * p.inputSize, count: p.inPerGroup * p.inputSize)
                        let weights = pw.address(at: group * p.inPerGroup * p.patch, count: p.inPerGroup * p.patch)
                        let destination = py.address(
                            at: (n * p.outChannels + group * p.outPerGroup) * p.outputSize, count: p.outPerGroup * p.outputSize)
                        for start in stride(from: 0, to: p.inputSize, by: p.tile) {
                            let count = min(p.tile, p.inputSize - start)
                            // columns = W_gᵀ X_g: one column of patch values per input position.
                            T.gemm(
                                transposeA: true, transposeB: false, m: p.patch, n: count, k: p.inPerGroup, alpha: 1,
                                a: weights, lda: p.patch, b: source + start, ldb: p.inputSize, beta: 0, c: columns,
                                ldc: count)
                            // Output channels own disjoint planes, so they split over threads.
                            Parallel.forEach(p.outPerGroup, grain: max(1, 16_384 / max(kernelVolume * count, 1))) { channels in
                                col2im(
                                    columns + channels.lowerBound * kernelVolume * count, channels: channels.count,
                                    window: p.window, positions: start..<start + count,
                                    into: destination + channels.lowerBound * p.outputSize)
                            }
                        }
                    }
                    if let bias {
                        applyEpilogue(
                            py.address(at: n * p.outChannels * p.outputSize, count: p.outChannels * p.outputSize),
                            rows: p.outChannels, columns: p.outputSize, stride: p.outputSize,
                            bias: bias.unsafeElements(as: T.self).address(count: p.outChannels), activation: nil)
                    }
                }
            }
        }
        try withExtendedLifetime((x, w, bias)) { try withGEMMType(x.dtype, "ConvTranspose") { try run($0) } }
        return [output]
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .bilinear(wanted: wanted) }

    /// `∂X = W · im2col(g)` (a convolution of the gradient), `∂W = X · im2col(g)ᵀ`, `∂B = Σ g`,
    /// per sample and group, in the forward's tiles.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let inputShape = try step.inputShape(0)
        let weightShape = try step.inputShape(1)
        let p = try plan(input: inputShape, weights: weightShape)
        let gx = step.wants(0) ? try Tensor(zeros: g.dtype, shape: inputShape) : nil
        let gw = step.wants(1) ? try Tensor(zeros: g.dtype, shape: weightShape) : nil
        let w = step.wants(0) ? try step.input(1) : nil
        let x = step.wants(1) ? try step.input(0) : nil
        func run<T: GEMMScalar>(_ type: T.Type) throws {
            let pg = g.unsafeElements(as: T.self)
            let (inputBlock, weightBlock) = (p.inPerGroup * p.inputSize, p.inPerGroup * p.patch)
            let kernelVolume = p.patch / max(p.outPerGroup, 1)
            try BufferPool.withScratch(T.self, count: p.patch * p.tile) { columns in
                for n in 0..<p.batch {
                    for group in 0..<groups {
                        let gradient = pg.address(
                            at: (n * p.outChannels + group * p.outPerGroup) * p.outputSize, count: p.outPerGroup * p.outputSize)
                        let inputOffset = (n * p.inChannels + group * p.inPerGroup) * p.inputSize
                        let weightOffset = group * p.inPerGroup * p.patch
                        for start in stride(from: 0, to: p.inputSize, by: p.tile) {
                            let count = min(p.tile, p.inputSize - start)
                            Parallel.forEach(p.outPerGroup, grain: max(1, 16_384 / max(kernelVolume * count, 1))) { channels in
                                im2col(
                                    gradient + channels.lowerBound * p.outputSize, channels: channels.count, window: p.window,
                                    positions: start..<start + count, into: columns + channels.lowerBound * kernelVolume * count)
                            }
                            if let gx, let w {
                                T.gemm(
                                    transposeA: false, transposeB: false, m: p.inPerGroup, n: count, k: p.patch, alpha: 1,
                                    a: w.unsafeElements(as: T.self).address(at: weightOffset, count: weightBlock), lda: p.patch,
                                    b: columns, ldb: count, beta: 0,
                                    c: gx.unsafeMutableElements(as: T.self).address(at: inputOffset, count: inputBlock) + start,
                                    ldc: p.inputSize)
                            }
                            if let gw, let x {
                                T.gemm(
                                    transposeA: false, transposeB: true, m: p.inPerGroup, n: p.patch, k: count, alpha: 1,
                                    a: x.unsafeElements(as: T.self).address(at: inputOffset, count: inputBlock) + start,
                                    lda: p.inputSize, b: columns, ldb: count, beta: 1,
                                    c: gw.unsafeMutableElements(as: T.self).address(at: weightOffset, count: weightBlock), ldc: p.patch)
                            }
                        }
                    }
                }
            }
        }
        try withExtendedLifetime((g, w, x)) { try withGEMMType(g.dtype, "ConvTranspose") { try run($0) } }
        var gb: Tensor?
        if step.wants(2) {
            let flat = try g.reshaped([p.batch, p.outChannels, p.outputSize])
            gb = try flat.summed(toShape: [1, p.outChannels, 1]).reshaped([p.outChannels])
        }
        return [gx, gw, gb]
    }
}

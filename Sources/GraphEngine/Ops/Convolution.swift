import ONNXModel
import TensorCore

// Convolution over 1 to 3 spatial axes: im2col in tiles, then one BLAS product per tile.

extension OpRegistry {
    mutating func registerConvolution() {
        register("Conv") { context in try Conv(context) }
    }
}

/// The sliding-window geometry shared by Conv and the pools: kernel, strides, dilations and pads
/// over the spatial axes, from the node's attributes with the spec's defaults.
struct WindowGeometry: Sendable {
    enum AutoPad: String { case notSet = "NOTSET", sameUpper = "SAME_UPPER", sameLower = "SAME_LOWER", valid = "VALID" }

    let kernel: [Int]?
    let strides: [Int]?
    let dilations: [Int]?
    let pads: [Int]?
    let autoPad: AutoPad
    let ceilMode: Bool

    init(_ context: OpContext, kernelRequired: Bool) throws {
        kernel = kernelRequired ? try context.node.requiredAttribute("kernel_shape") : try context.attribute("kernel_shape")
        strides = try context.attribute("strides")
        dilations = try context.attribute("dilations")
        pads = try context.attribute("pads")
        let autoPadName = try context.attribute("auto_pad", default: "NOTSET")
        guard let autoPad = AutoPad(rawValue: autoPadName) else {
            throw context.invalid("auto_pad", "must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got '\(autoPadName)'")
        }
        self.autoPad = autoPad
        ceilMode = try context.attribute("ceil_mode", default: 0) != 0
        // Bounded so that window arithmetic cannot overflow, whatever a file declares.
        let limit = Int(Int32.max)
        for (name, values) in [("kernel_shape", kernel), ("strides", strides), ("dilations", dilations)] {
            if let values, values.contains(where: { $0 < 1 || $0 > limit }) {
                throw context.invalid(name, "values must be in 1...\(limit), got \(values)")
            }
        }
        if let pads, pads.contains(where: { $0 < 0 || $0 > limit }) {
            throw context.invalid("pads", "values must be in 0...\(limit), got \(pads)")
        }
    }

    /// The window laid over an input's spatial extents.
    struct Resolved {
        let input: [Int]
        let output: [Int]
        let kernel: [Int]
        let strides: [Int]
        let dilations: [Int]
        /// Padding before each spatial axis (after-padding only matters for the output size).
        let padBegin: [Int]
        let padEnd: [Int]
    }

    /// Resolves the window for `spatial` input extents; `kernel` comes from the weights for Conv.
    func resolve(spatial: [Int], kernel inferred: [Int]? = nil) throws -> Resolved {
        let rank = spatial.count
        guard let kernel = self.kernel ?? inferred, kernel.count == rank else {
            throw OpError("kernel_shape \(self.kernel ?? inferred ?? []) does not match \(rank) spatial axes")
        }
        if let inferred, kernel != inferred {
            throw OpError("kernel_shape \(kernel) disagrees with the weights' spatial extents \(inferred)")
        }
        let strides = self.strides ?? Array(repeating: 1, count: rank)
        let dilations = self.dilations ?? Array(repeating: 1, count: rank)
        guard strides.count == rank, dilations.count == rank else {
            throw OpError("strides \(strides) or dilations \(dilations) do not match \(rank) spatial axes")
        }
        var padBegin = Array(repeating: 0, count: rank)
        var padEnd = Array(repeating: 0, count: rank)
        var output = Array(repeating: 0, count: rank)
        for axis in 0..<rank {
            let extent = (kernel[axis] - 1) * dilations[axis] + 1
            switch autoPad {
            case .notSet, .valid:
                if autoPad == .notSet, let pads {
                    guard pads.count == 2 * rank else { throw OpError("pads \(pads) must hold \(2 * rank) values") }
                    padBegin[axis] = pads[axis]
                    padEnd[axis] = pads[axis + rank]
                }
                let span = spatial[axis] + padBegin[axis] + padEnd[axis] - extent
                guard span >= 0 else {
                    throw OpError("window of extent \(extent) does not fit spatial axis \(axis) of size \(spatial[axis]) with padding")
                }
                var count = (ceilMode ? (span + strides[axis] - 1) / strides[axis] : span / strides[axis]) + 1
                // A window may not start in the end padding (PyTorch and onnxruntime agree).
                if ceilMode, (count - 1) * strides[axis] >= spatial[axis] + padBegin[axis] { count -= 1 }
                output[axis] = count
            case .sameUpper, .sameLower:
                output[axis] = (spatial[axis] + strides[axis] - 1) / strides[axis]
                let total = max(0, (output[axis] - 1) * strides[axis] + extent - spatial[axis])
                padBegin[axis] = autoPad == .sameUpper ? total / 2 : total - total / 2
                padEnd[axis] = total - padBegin[axis]
            }
        }
        return Resolved(
            input: spatial, output: output, kernel: kernel, strides: strides, dilations: dilations,
            padBegin: padBegin, padEnd: padEnd)
    }
}

extension WindowGeometry.Resolved {
    /// The same window over exactly three spatial axes (leading axes of extent 1 added), so
    /// kernels need only one loop nest for 1-D, 2-D and 3-D inputs.
    var as3D: WindowGeometry.Resolved {
        let missing = 3 - input.count
        func pad(_ values: [Int], _ fill: Int) -> [Int] { Array(repeating: fill, count: missing) + values }
        return .init(
            input: pad(input, 1), output: pad(output, 1), kernel: pad(kernel, 1), strides: pad(strides, 1),
            dilations: pad(dilations, 1), padBegin: pad(padBegin, 0), padEnd: pad(padEnd, 0))
    }
}

/// `Conv`: N-channel convolution with groups (depthwise included), bias, strides, dilations, pads.
struct Conv: Operator {
    let geometry: WindowGeometry
    let groups: Int

    init(_ context: OpContext) throws {
        geometry = try WindowGeometry(context, kernelRequired: false)
        groups = try context.attribute("group", default: 1)
        guard groups >= 1 else { throw context.invalid("group", "must be at least 1, got \(groups)") }
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        let bias = inputs[2]
        guard x.dtype == .float32, w.dtype == .float32, bias?.dtype ?? .float32 == .float32 else {
            throw OpError("Conv supports float32 tensors, got \(x.dtype) input and \(w.dtype) weights")
        }
        guard x.rank >= 3, x.rank <= 5, w.rank == x.rank else {
            throw OpError("Conv needs input and weights of rank 3 to 5 alike, got \(x.shape) and \(w.shape)")
        }
        let (batch, channels, filters) = (x.shape[0], x.shape[1], w.shape[0])
        guard channels % groups == 0, filters % groups == 0, w.shape[1] * groups == channels else {
            throw OpError("weights \(w.shape) with \(groups) group(s) do not fit \(channels) input channels")
        }
        if let bias, bias.count != filters { throw OpError("bias has \(bias.count) values for \(filters) filters") }
        let window = try geometry.resolve(spatial: Array(x.shape[2...]), kernel: Array(w.shape[2...]))
        let output = try Tensor(zeros: .float32, shape: [batch, filters] + window.output)
        let g = window.as3D
        let inputSize = g.input.reduce(1, *)
        let outputSize = g.output.reduce(1, *)
        let channelsPerGroup = channels / groups
        let filtersPerGroup = filters / groups
        let patch = channelsPerGroup * g.kernel.reduce(1, *)
        let pointwise = g.kernel == [1, 1, 1] && g.strides == [1, 1, 1] && g.padBegin == [0, 0, 0] && g.padEnd == [0, 0, 0]
        // Tile the output positions so the im2col buffer stays near 8 MB whatever the layer.
        let tile = pointwise ? outputSize : max(16, min(outputSize, (1 << 21) / max(patch, 1)))
        let columns = UnsafeMutablePointer<Float>.allocate(capacity: pointwise ? 1 : patch * tile)
        defer { columns.deallocate() }

        withExtendedLifetime((x, w, bias)) {
            let px = x.storage.base.assumingMemoryBound(to: Float.self)
            let pw = w.storage.base.assumingMemoryBound(to: Float.self)
            let py = output.storage.base.assumingMemoryBound(to: Float.self)
            do {
                for n in 0..<batch {
                    for group in 0..<groups {
                        let source = px + (n * channels + group * channelsPerGroup) * inputSize
                        let weights = pw + group * filtersPerGroup * patch
                        let destination = py + (n * filters + group * filtersPerGroup) * outputSize
                        if pointwise {
                            Float.gemm(
                                transposeA: false, transposeB: false, m: filtersPerGroup, n: outputSize,
                                k: channelsPerGroup, alpha: 1, a: weights, lda: patch, b: source, ldb: inputSize,
                                beta: 0, c: destination, ldc: outputSize)
                            continue
                        }
                        var start = 0
                        while start < outputSize {
                            let count = min(tile, outputSize - start)
                            im2col(source, channels: channelsPerGroup, window: g, positions: start..<start + count, into: columns)
                            Float.gemm(
                                transposeA: false, transposeB: false, m: filtersPerGroup, n: count, k: patch, alpha: 1,
                                a: weights, lda: patch, b: columns, ldb: count, beta: 0,
                                c: destination + start, ldc: outputSize)
                            start += count
                        }
                    }
                }
            }
            if let bias {
                let pb = bias.storage.base.assumingMemoryBound(to: Float.self)
                for n in 0..<batch {
                    for f in 0..<filters {
                        let row = py + (n * filters + f) * outputSize
                        let value = pb[f]
                        for i in 0..<outputSize { row[i] += value }
                    }
                }
            }
        }
        return [output]
    }
}

/// Writes the input patches for output `positions` as columns of a `[patch, positions.count]`
/// matrix (rows ordered channel, then kernel depth, height, width, as the weights are), with
/// zeros where the window covers padding.
func im2col(
    _ input: UnsafePointer<Float>, channels: Int, window g: WindowGeometry.Resolved, positions: Range<Int>,
    into columns: UnsafeMutablePointer<Float>
) {
    let (inD, inH, inW) = (g.input[0], g.input[1], g.input[2])
    let (outH, outW) = (g.output[1], g.output[2])
    let (kD, kH, kW) = (g.kernel[0], g.kernel[1], g.kernel[2])
    let width = positions.count
    var row = 0
    for c in 0..<channels {
        let plane = input + c * inD * inH * inW
        for kd in 0..<kD {
            for kh in 0..<kH {
                for kw in 0..<kW {
                    let destination = columns + row * width
                    var od = positions.lowerBound / (outH * outW)
                    var oh = (positions.lowerBound / outW) % outH
                    var ow = positions.lowerBound % outW
                    for i in 0..<width {
                        let d = od * g.strides[0] - g.padBegin[0] + kd * g.dilations[0]
                        let h = oh * g.strides[1] - g.padBegin[1] + kh * g.dilations[1]
                        let w = ow * g.strides[2] - g.padBegin[2] + kw * g.dilations[2]
                        destination[i] =
                            d >= 0 && d < inD && h >= 0 && h < inH && w >= 0 && w < inW
                            ? plane[(d * inH + h) * inW + w] : 0
                        ow += 1
                        if ow == outW {
                            ow = 0
                            oh += 1
                            if oh == outH {
                                oh = 0
                                od += 1
                            }
                        }
                    }
                    row += 1
                }
            }
        }
    }
}

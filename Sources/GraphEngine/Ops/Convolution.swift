import ONNXModel
import TensorCore

// Convolution over 1 to 3 spatial axes: im2col in tiles, then one product per tile (Winograd for 3×3, stride 1).

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

    /// Throws unless `kernel_shape`, where set, equals the weights' spatial extents.
    func checkKernel(_ weights: [Int]) throws {
        if let kernel, kernel != weights {
            throw OpError("kernel_shape \(kernel) disagrees with the weights' spatial extents \(weights)")
        }
    }

    /// Strides and dilations over `rank` spatial axes (1 where unset), checked against the rank.
    func steps(rank: Int) throws -> (strides: [Int], dilations: [Int]) {
        let strides = self.strides ?? Array(repeating: 1, count: rank)
        let dilations = self.dilations ?? Array(repeating: 1, count: rank)
        guard strides.count == rank, dilations.count == rank else {
            throw OpError("strides \(strides) or dilations \(dilations) do not match \(rank) spatial axes")
        }
        return (strides, dilations)
    }

    /// The `pads` attribute as begin and end pads over `rank` axes; zeros unless auto_pad is NOTSET.
    func explicitPads(rank: Int) throws -> (begin: [Int], end: [Int]) {
        guard autoPad == .notSet, let pads else { return (Array(repeating: 0, count: rank), Array(repeating: 0, count: rank)) }
        guard pads.count == 2 * rank else { throw OpError("pads \(pads) must hold \(2 * rank) values") }
        return (Array(pads[..<rank]), Array(pads[rank...]))
    }

    /// Resolves the window for `spatial` input extents; `kernel` comes from the weights for Conv.
    func resolve(spatial: [Int], kernel inferred: [Int]? = nil) throws -> Resolved {
        let rank = spatial.count
        guard let kernel = self.kernel ?? inferred, kernel.count == rank else {
            throw OpError("kernel_shape \(self.kernel ?? inferred ?? []) does not match \(rank) spatial axes")
        }
        if let inferred { try checkKernel(inferred) }
        let (strides, dilations) = try steps(rank: rank)
        var (padBegin, padEnd) = try explicitPads(rank: rank)
        var output = Array(repeating: 0, count: rank)
        for axis in 0..<rank {
            let extent = (kernel[axis] - 1) * dilations[axis] + 1
            switch autoPad {
            case .notSet, .valid:
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
struct Conv: DifferentiableOperator, ActivationFusing {
    let geometry: WindowGeometry
    let groups: Int
    /// Applied with the bias right after each tile's product (see ``Fusion``).
    var activation: Activation?
    /// The weights in Winograd's domain, for 3×3 stride-1 layers (shared by fused copies).
    let winogradCache = WeightCache<WinogradFilters>()
    /// The weights as the kernel table's packed left operand, for the other float32 layers of one group.
    let packedCache = WeightCache<PackedMatrix>()

    init(_ context: OpContext) throws {
        geometry = try WindowGeometry(context, kernelRequired: false)
        groups = try context.attribute("group", default: 1)
        guard groups >= 1 else { throw context.invalid("group", "must be at least 1, got \(groups)") }
    }

    /// The sizes one convolution works with, checked against each other.
    struct Plan {
        let batch, channels, filters, groups: Int
        let window: WindowGeometry.Resolved
        let inputSize, outputSize, channelsPerGroup, filtersPerGroup, patch, tile: Int
        /// A 1×1, stride-1, unpadded kernel reads the input directly as its column matrix.
        let pointwise: Bool
        let outputShape: [Int]
    }

    func plan(input: [Int], weights: [Int]) throws -> Plan {
        guard input.count >= 3, input.count <= 5, weights.count == input.count else {
            throw OpError("Conv needs input and weights of rank 3 to 5 alike, got \(input) and \(weights)")
        }
        let (batch, channels, filters) = (input[0], input[1], weights[0])
        guard channels % groups == 0, filters % groups == 0, weights[1] * groups == channels else {
            throw OpError("weights \(weights) with \(groups) group(s) do not fit \(channels) input channels")
        }
        let resolved = try geometry.resolve(spatial: Array(input[2...]), kernel: Array(weights[2...]))
        let g = resolved.as3D
        let patch = channels / groups * g.kernel.reduce(1, *)
        let outputSize = g.output.reduce(1, *)
        let pointwise = g.kernel == [1, 1, 1] && g.strides == [1, 1, 1] && g.padBegin == [0, 0, 0] && g.padEnd == [0, 0, 0]
        return Plan(
            batch: batch, channels: channels, filters: filters, groups: groups, window: g,
            inputSize: g.input.reduce(1, *), outputSize: outputSize, channelsPerGroup: channels / groups,
            filtersPerGroup: filters / groups, patch: patch,
            // Tile the output positions so the column buffer stays near 8 MB whatever the layer.
            tile: max(16, min(outputSize, (1 << 21) / max(patch, 1))),
            pointwise: pointwise, outputShape: [batch, filters] + resolved.output)
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] { [try convolve(inputs, residual: nil)] }

    func multiplyAdds(_ inputs: OpInputs) throws -> Int? {
        let p = try plan(input: try inputs.required(0).shape, weights: try inputs.required(1).shape)
        return WorkBudget.product(p.batch, p.filters, p.outputSize, p.patch)
    }

    /// The convolution with `residual` added before the activation, in the product kernels' stores
    /// or Winograd's output transform (the bits of `Conv`, `Add`, then the activation, as separate
    /// ops); nil where those do not run (not float32, no product kernels, grouped layers, or a
    /// residual that is not exactly the output's shape), and the caller runs the ops as written.
    func withResidual(_ inputs: OpInputs, residual: Tensor) throws -> Tensor? {
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        guard x.dtype == .float32, w.dtype == .float32, inputs[2]?.dtype ?? .float32 == .float32, residual.dtype == .float32,
            groups == 1, Kernels.current.gemm != nil, activation == nil || activation == .relu
        else { return nil }
        let p = try plan(input: x.shape, weights: w.shape)
        guard residual.shape == p.outputShape else { return nil }
        return try convolve(inputs, residual: residual)
    }

    /// The convolution, plus `residual` before the activation when given (see ``withResidual(_:residual:)``,
    /// which checks that the packed-product path runs).
    private func convolve(_ inputs: OpInputs, residual: Tensor?) throws -> Tensor {
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        let bias = inputs[2]
        guard w.dtype == x.dtype, bias?.dtype ?? x.dtype == x.dtype else {
            throw OpError("Conv input, weights and bias must share one type, got \(x.dtype), \(w.dtype), \(bias?.dtype ?? x.dtype)")
        }
        let p = try plan(input: x.shape, weights: w.shape)
        if let bias, bias.count != p.filters { throw OpError("bias has \(bias.count) values for \(p.filters) filters") }
        // Every element is written by a product with beta = 0.
        let output = try Tensor(uninitialized: x.dtype, shape: p.outputShape)
        // 3×3, stride-1 float32 convolutions go through Winograd's transform domain.
        let winograd = x.dtype == .float32 ? WinogradConvolution(p) : nil
        let winogradFilters = try winograd.map { plan in try winogradCache.value(for: w) { try plan.filters(w) } }
        let gemm = winograd == nil && x.dtype == .float32 && p.groups == 1 ? Kernels.current.gemm : nil
        let packed: PackedWeights? = try gemm.map { gemm in
            let matrix = try packedCache.value(for: w) {
                try gemm.pack(
                    left: w.unsafeElements(as: Float.self).address(count: p.filters * p.patch), rows: p.filters,
                    depth: p.patch, rowStride: p.patch)
            }
            return (gemm, matrix)
        }
        func run<T: GEMMScalar>(_ type: T.Type) throws {
            if let winograd, let filters = winogradFilters {  // float32 only
                try winograd.forward(
                    input: x.unsafeElements(as: Float.self).address(), filters: filters,
                    bias: bias.map { $0.unsafeElements(as: Float.self).address() },
                    residual: residual.map { $0.unsafeElements(as: Float.self).address() }, activation: activation,
                    output: output.unsafeMutableElements(as: Float.self).address(), runs: winograd.pipelineRuns(filters: filters))
                return
            }
            let (px, pw, py) = (x.unsafeElements(as: T.self), w.unsafeElements(as: T.self), output.unsafeMutableElements(as: T.self))
            let pb = bias?.unsafeElements(as: T.self)
            let pr = residual?.unsafeElements(as: T.self)
            if p.batch > 1, p.groups == 1, p.outputSize < Conv.mergedBatchBelow(packed: packed != nil) {
                try forwardMerged(p, px, pw, pb, pr, py, packed: packed)
                return
            }
            if let packed, !p.pointwise, let chunk = Conv.pipelineChunk(p, gemm: packed.gemm) {
                try forwardPipelined(
                    p, asFloat(px.address()), packed: packed, bias: pb.map { asFloat($0.address()) },
                    residual: pr.map { asFloat($0.address()) }, chunk: chunk, into: asMutableFloat(py.address()))
                return
            }
            /// `weights · B` into `C` (both `[·, count]` blocks), with the bias, the residual
            /// (packed weights only) and the activation.
            func product(
                _ weights: UnsafePointer<T>, _ b: UnsafePointer<T>, ldb: Int, depth: Int, count: Int,
                _ c: UnsafeMutablePointer<T>, bias: UnsafePointer<T>?, residual: UnsafePointer<T>?, threaded: Bool = true
            ) {
                if let packed {
                    packed.gemm.multiply(
                        m: p.filtersPerGroup, n: count, k: depth, a: .packed(packed.matrix), b: .rowMajor(asFloat(b), stride: ldb),
                        c: asMutableFloat(c), ldc: p.outputSize, rowBias: bias.map(asFloat), residual: residual.map(asFloat),
                        residualStride: p.outputSize, relu: activation == .relu, threaded: threaded)
                    // The kernel stores with ReLU only; other activations follow on the block it wrote.
                    if let activation, activation != .relu {
                        applyEpilogue(c, rows: p.filtersPerGroup, columns: count, stride: p.outputSize, bias: nil, activation: activation)
                    }
                    return
                }
                T.gemm(
                    transposeA: false, transposeB: false, m: p.filtersPerGroup, n: count, k: depth, alpha: 1, a: weights,
                    lda: p.patch, b: b, ldb: ldb, beta: 0, c: c, ldc: p.outputSize, threaded: threaded)
                applyEpilogue(c, rows: p.filtersPerGroup, columns: count, stride: p.outputSize, bias: bias, activation: activation)
            }
            // 1×1 layers of a batch at least as large as the threads: each thread multiplies its own
            // samples' maps, so it reads what it wrote in the layer before.
            if packed != nil, p.pointwise, p.groups == 1, Parallel.width > 1, p.batch >= Parallel.width {
                Parallel.forEach(p.batch, grain: 1) { samples in
                    for n in samples {
                        let at = n * p.filters * p.outputSize
                        product(
                            pw.address(), px.address(at: n * p.channels * p.inputSize), ldb: p.inputSize, depth: p.channels,
                            count: p.outputSize, py.address(at: at), bias: pb?.address(), residual: pr?.address(at: at),
                            threaded: false)
                    }
                }
                return
            }
            try BufferPool.withScratch(T.self, count: p.pointwise ? 1 : p.patch * p.tile) { columns in
                for n in 0..<p.batch {
                    for group in 0..<p.groups {
                        let source = px.address(
                            at: (n * p.channels + group * p.channelsPerGroup) * p.inputSize, count: p.channelsPerGroup * p.inputSize)
                        let weights = pw.address(at: group * p.filtersPerGroup * p.patch, count: p.filtersPerGroup * p.patch)
                        let destination = py.address(
                            at: (n * p.filters + group * p.filtersPerGroup) * p.outputSize, count: p.filtersPerGroup * p.outputSize)
                        let groupBias = pb?.address(at: group * p.filtersPerGroup, count: p.filtersPerGroup)
                        let groupResidual = pr?.address(
                            at: (n * p.filters + group * p.filtersPerGroup) * p.outputSize, count: p.filtersPerGroup * p.outputSize)
                        for start in stride(from: 0, to: p.outputSize, by: p.tile) {
                            let count = min(p.tile, p.outputSize - start)
                            if p.pointwise {
                                product(
                                    weights, source + start, ldb: p.inputSize, depth: p.channelsPerGroup, count: count,
                                    destination + start, bias: groupBias, residual: groupResidual.map { $0 + start })
                            } else {
                                // Positions fill disjoint column blocks of the column matrix, so they split over
                                // threads evenly whatever the channel count (a stem has three).
                                Parallel.forEach(count, grain: max(16, 16_384 / p.patch)) { part in
                                    im2col(
                                        source, channels: p.channelsPerGroup, window: p.window,
                                        positions: start + part.lowerBound..<start + part.upperBound,
                                        into: columns + part.lowerBound, rowStride: count)
                                }
                                product(
                                    weights, columns, ldb: count, depth: p.patch, count: count, destination + start,
                                    bias: groupBias, residual: groupResidual.map { $0 + start })
                            }
                        }
                    }
                }
            }
        }
        try withExtendedLifetime((x, w, bias, residual, winogradFilters)) { try withGEMMType(x.dtype, "Conv") { try run($0) } }
        return output
    }

    /// Positions per part where each thread runs its own parts start to end: the columns of a
    /// run of positions, then their product with every filter, while the columns are still in
    /// its level-2 cache (half of it holds them) and with no wait for the other threads between
    /// the two. Nil for a layer with too few runs to keep every thread busy that way (a late
    /// layer's small map), which splits each product over the threads instead.
    ///
    /// Every thread gets the same number of runs: a sample's positions are cut into as few runs as
    /// the cache allows, plus as many as make the batch's runs a multiple of the threads, each of
    /// whole vectors. (The stem's 12,544 positions at 864 per run made 15 runs, 8 for one thread
    /// and 7 for the other; 16 runs of 784 split evenly.)
    static func pipelineChunk(_ p: Plan, gemm: PackedGEMM) -> Int? {
        guard p.groups == 1, p.patch > 0, p.outputSize > 0 else { return nil }
        let panel = gemm.panelColumns
        let longest = max(panel, PackedGEMM.level2CacheBytes / 2 / (4 * p.patch) / panel * panel)
        let width = Parallel.width
        var perSample = (p.outputSize + longest - 1) / longest
        while p.batch * perSample % width != 0 { perSample += 1 }
        let lanes = gemm.lanes
        let chunk = ((p.outputSize + perSample - 1) / perSample + lanes - 1) / lanes * lanes
        let runs = p.batch * ((p.outputSize + chunk - 1) / chunk)
        return runs >= 4 * width ? chunk : nil
    }

    /// The convolution by ``pipelineChunk(_:gemm:)``'s runs of `chunk` positions, each sample's
    /// runs in turn, spread over the threads.
    private func forwardPipelined(
        _ p: Plan, _ x: UnsafePointer<Float>, packed: PackedWeights, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, chunk: Int, into y: UnsafeMutablePointer<Float>
    ) throws {
        let perSample = (p.outputSize + chunk - 1) / chunk
        let other = activation == .relu ? nil : activation
        try Parallel.tryForEach(p.batch * perSample, grain: 1) { runs in
            try BufferPool.withScratch(Float.self, count: p.patch * chunk) { columns in
                for run in runs {
                    let (n, start) = (run / perSample, run % perSample * chunk)
                    let count = min(chunk, p.outputSize - start)
                    im2col(
                        x + n * p.channels * p.inputSize, channels: p.channels, window: p.window,
                        positions: start..<start + count, into: columns)
                    let offset = n * p.filters * p.outputSize + start
                    packed.gemm.multiply(
                        m: p.filters, n: count, k: p.patch, a: .packed(packed.matrix), b: .rowMajor(columns, stride: count),
                        c: y + offset, ldc: p.outputSize, rowBias: bias, residual: residual.map { $0 + offset },
                        residualStride: p.outputSize, relu: activation == .relu, threaded: false)
                    if let other {
                        for f in 0..<p.filters { other.apply(y + offset + f * p.outputSize, count: count) }
                    }
                }
            }
        }
    }

    /// Output maps smaller than this many positions are computed for the whole batch at once.
    ///
    /// BLAS repacks the weights on every call, so merging pays up to 1024 positions. With the
    /// weights packed once only the ragged last panel is saved (a 7×7 map fills 49 of 64 lanes;
    /// 8 of them fill 392 of 400), and from 14×14 on the copies in and out cost more than that.
    static func mergedBatchBelow(packed: Bool) -> Int { packed ? 128 : 1024 }

    /// One product per tile of positions taken across the whole batch (sample after sample), so
    /// small maps still make wide products and the weights are packed once per tile, not once per
    /// sample. Each tile's `[filters, positions]` result is then scattered to `[N, F, positions]`
    /// with the bias, the residual `pr` (`[N, F, positions]`, when given) and the activation.
    private func forwardMerged<T: GEMMScalar>(
        _ p: Plan, _ px: UnsafeBufferPointer<T>, _ pw: UnsafeBufferPointer<T>, _ pb: UnsafeBufferPointer<T>?,
        _ pr: UnsafeBufferPointer<T>?, _ py: UnsafeMutableBufferPointer<T>, packed: PackedWeights?
    ) throws {
        /// The samples `samples` in tiles, on this thread alone unless `threaded`.
        func run(_ samples: Range<Int>, threaded: Bool) throws {
            let positions = samples.lowerBound * p.outputSize..<samples.upperBound * p.outputSize
            let tile = max(16, min(positions.count, (1 << 21) / max(p.patch, 1)))
            try BufferPool.withScratch(T.self, count: p.patch * tile) { columns in
                try BufferPool.withScratch(T.self, count: p.filters * tile) { product in
                    mergedTiles(
                        p, px, pw, pb, pr, py, packed: packed, positions: positions, tile: tile, columns: columns,
                        product: product, threaded: threaded)
                }
            }
        }
        // A batch of at least as many samples as threads: each thread merges its own samples, so
        // it reads the maps it wrote in the layer before and never waits for the other threads.
        if Parallel.width > 1, p.batch >= Parallel.width {
            try Parallel.tryForEach(p.batch, grain: 1) { try run($0, threaded: false) }
        } else {
            try run(0..<p.batch, threaded: true)
        }
    }

    /// ``forwardMerged(_:_:_:_:_:_:packed:)``'s tiles of the batch's merged `positions` (sample
    /// after sample), with its scratch buffers: `columns` for `[patch, tile]`, `product` for
    /// `[filters, tile]`. Loops split over the threads when `threaded`.
    private func mergedTiles<T: GEMMScalar>(
        _ p: Plan, _ px: UnsafeBufferPointer<T>, _ pw: UnsafeBufferPointer<T>, _ pb: UnsafeBufferPointer<T>?,
        _ pr: UnsafeBufferPointer<T>?, _ py: UnsafeMutableBufferPointer<T>, packed: PackedWeights?, positions: Range<Int>,
        tile: Int, columns: UnsafeMutablePointer<T>, product: UnsafeMutablePointer<T>, threaded: Bool
    ) {
        func split(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
            if threaded { Parallel.forEach(count, grain: grain, body) } else if count > 0 { body(0..<count) }
        }
        let kernelVolume = p.patch / p.channels
        for start in stride(from: positions.lowerBound, to: positions.upperBound, by: tile) {
            let count = min(tile, positions.upperBound - start)
            // The samples this tile covers, each as (sample, its positions, offset within the tile).
            var segments: [(n: Int, positions: Range<Int>, offset: Int)] = []
            var position = start
            while position < start + count {
                let n = position / p.outputSize
                let end = min(start + count, (n + 1) * p.outputSize)
                segments.append((n, position - n * p.outputSize..<end - n * p.outputSize, position - start))
                position = end
            }
            for segment in segments {
                let source = px.address(at: segment.n * p.channels * p.inputSize, count: p.channels * p.inputSize)
                split(p.channels, grain: max(1, 16_384 / (kernelVolume * segment.positions.count))) { channels in
                    im2col(
                        source + channels.lowerBound * p.inputSize, channels: channels.count, window: p.window,
                        positions: segment.positions,
                        into: columns + channels.lowerBound * kernelVolume * count + segment.offset, rowStride: count)
                }
            }
            if let packed {
                packed.gemm.multiply(
                    m: p.filters, n: count, k: p.patch, a: .packed(packed.matrix), b: .rowMajor(asFloat(UnsafePointer(columns)), stride: count),
                    c: asMutableFloat(product), ldc: count, threaded: threaded)
            } else {
                T.gemm(
                    transposeA: false, transposeB: false, m: p.filters, n: count, k: p.patch, alpha: 1, a: pw.address(),
                    lda: p.patch, b: columns, ldb: count, beta: 0, c: product, ldc: count, threaded: threaded)
            }
            let relu = activation == .relu
            let other = relu ? nil : activation
            split(p.filters, grain: max(1, 16_384 / count)) { filters in
                for f in filters {
                    let offset = pb?[f] ?? 0
                    for segment in segments {
                        let from = product + f * count + segment.offset
                        let at = (segment.n * p.filters + f) * p.outputSize + segment.positions.lowerBound
                        let to = py.address(at: at, count: segment.positions.count)
                        let r = pr?.address(at: at, count: segment.positions.count)
                        for i in 0..<segment.positions.count {
                            var v = from[i] + offset
                            if let r { v += r[i] }
                            to[i] = relu ? max(v, 0) : v
                        }
                        other?.apply(to, count: segment.positions.count)
                    }
                }
            }
        }
    }

    func fused(with activation: Activation) -> any Operator {
        var fused = self
        fused.activation = activation
        return fused
    }

    /// Every ``Activation``: ReLU inside the product kernels' stores, the others on each block
    /// right after it is written.
    func canFuse(_ activation: Activation) -> Bool { true }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .bilinear(wanted: wanted) }

    /// `∂x = col2im(Wᵀ g)`, `∂W = g colᵀ`, `∂b = Σ g`, per sample and group, in the forward's tiles.
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
            let (inputBlock, weightBlock) = (p.channelsPerGroup * p.inputSize, p.filtersPerGroup * p.patch)
            try BufferPool.withScratch(T.self, count: p.patch * p.tile) { columns in
                for n in 0..<p.batch {
                    for group in 0..<p.groups {
                        let gradient = pg.address(
                            at: (n * p.filters + group * p.filtersPerGroup) * p.outputSize, count: p.filtersPerGroup * p.outputSize)
                        let inputOffset = (n * p.channels + group * p.channelsPerGroup) * p.inputSize
                        let weightOffset = group * p.filtersPerGroup * p.patch
                        for start in stride(from: 0, to: p.outputSize, by: p.tile) {
                            let count = min(p.tile, p.outputSize - start)
                            if let gx, let w {
                                T.gemm(
                                    transposeA: true, transposeB: false, m: p.patch, n: count, k: p.filtersPerGroup,
                                    alpha: 1, a: w.unsafeElements(as: T.self).address(at: weightOffset, count: weightBlock), lda: p.patch,
                                    b: gradient + start, ldb: p.outputSize, beta: 0, c: columns, ldc: count)
                                col2im(
                                    columns, channels: p.channelsPerGroup, window: p.window, positions: start..<start + count,
                                    into: gx.unsafeMutableElements(as: T.self).address(at: inputOffset, count: inputBlock))
                            }
                            if let gw, let x {
                                im2col(
                                    x.unsafeElements(as: T.self).address(at: inputOffset, count: inputBlock), channels: p.channelsPerGroup,
                                    window: p.window, positions: start..<start + count, into: columns)
                                T.gemm(
                                    transposeA: false, transposeB: true, m: p.filtersPerGroup, n: p.patch, k: count, alpha: 1,
                                    a: gradient + start, lda: p.outputSize, b: columns, ldb: count, beta: 1,
                                    c: gw.unsafeMutableElements(as: T.self).address(at: weightOffset, count: weightBlock), ldc: p.patch)
                            }
                        }
                    }
                }
            }
        }
        try withExtendedLifetime((g, w, x)) { try withGEMMType(g.dtype, "Conv") { try run($0) } }
        var gb: Tensor?
        if step.wants(2) {
            // Σ over batch and positions: reduce [N, F, positions] to [F].
            let flat = try g.reshaped([p.batch, p.filters, p.outputSize])
            gb = try flat.summed(toShape: [1, p.filters, 1]).reshaped([p.filters])
        }
        return [gx, gw, gb]
    }
}

/// `pointer` as float32, for the packed-weight paths, taken only when `T` is `Float` (asserted in debug builds).
@inline(__always)
func asFloat<T>(_ pointer: UnsafePointer<T>) -> UnsafePointer<Float> {
    assert(T.self == Float.self, "\(T.self) read as Float")
    return UnsafeRawPointer(pointer).assumingMemoryBound(to: Float.self)
}

/// Mutable twin of ``asFloat(_:)``.
@inline(__always)
func asMutableFloat<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> {
    assert(T.self == Float.self, "\(T.self) written as Float")
    return UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: Float.self)
}

/// Adds a per-row bias and applies `activation` to a `[rows, columns]` block of a matrix whose
/// rows are `stride` apart, while the block is still in cache; rows split over threads.
@_specialize(where T == Float)
func applyEpilogue<T: FloatKernelScalar>(
    _ block: UnsafeMutablePointer<T>, rows: Int, columns: Int, stride: Int, bias: UnsafePointer<T>?,
    activation: Activation?
) {
    guard bias != nil || activation != nil else { return }
    let relu = activation == .relu
    let other = relu ? nil : activation
    Parallel.forEach(rows, grain: max(1, 16_384 / max(columns, 1))) { range in
        for row in range {
            let values = UnsafeMutableBufferPointer(start: block + row * stride, count: columns)
            let offset = bias?[row] ?? 0
            if relu {
                for i in values.indices { values[i] = max(values[i] + offset, 0) }
            } else if bias != nil {
                for i in values.indices { values[i] += offset }
            }
            other?.apply(block + row * stride, count: columns)
        }
    }
}

/// Writes the input patches for output `positions` as columns of a `[patch, positions.count]`
/// matrix (rows ordered channel, then kernel depth, height, width, as the weights are), with
/// zeros where the window covers padding.
@_specialize(where T == Float)
func im2col<T: GEMMScalar>(
    _ input: UnsafePointer<T>, channels: Int, window g: WindowGeometry.Resolved, positions: Range<Int>,
    into columns: UnsafeMutablePointer<T>, rowStride: Int? = nil
) {
    forEachRun(channels: channels, window: g, positions: positions, rowStride: rowStride ?? positions.count) { column, count, source, step in
        guard let source else {
            (columns + column).update(repeating: 0, count: count)
            return
        }
        if step == 1 {
            (columns + column).update(from: input + source, count: count)
        } else if step == 2, T.self == Float.self {
            Kernels.copyEverySecond(asFloat(input + source), into: asMutableFloat(columns + column), count: count)
        } else {
            for i in 0..<count { columns[column + i] = input[source + i * step] }
        }
    }
}

/// The adjoint of ``im2col``: adds each column entry back onto the input position it was read from
/// (wrapping for integers, which Col2Im folds). Specialized for float32: ConvTranspose's forward
/// pass runs it on every image.
@_specialize(where T == Float)
func col2im<T: ArithmeticScalar>(
    _ columns: UnsafePointer<T>, channels: Int, window g: WindowGeometry.Resolved, positions: Range<Int>,
    into input: UnsafeMutablePointer<T>
) {
    forEachRun(channels: channels, window: g, positions: positions) { column, count, source, step in
        guard let source else { return }
        for i in 0..<count { input[source + i * step] = T.add(input[source + i * step], columns[column + i]) }
    }
}

/// Visits the column matrix in runs: for each patch row (channel, kernel depth, height, width)
/// and each output row, the stretches of consecutive output positions that read padding
/// (`source` nil) or input elements `step` apart starting at `source`. Patch rows are
/// `rowStride` elements apart (the positions' count unless several samples share the matrix).
@inline(__always)
private func forEachRun(
    channels: Int, window g: WindowGeometry.Resolved, positions: Range<Int>, rowStride: Int? = nil,
    _ body: (_ column: Int, _ count: Int, _ source: Int?, _ step: Int) -> Void
) {
    let (inD, inH, inW) = (g.input[0], g.input[1], g.input[2])
    let (outH, outW) = (g.output[1], g.output[2])
    let width = rowStride ?? positions.count
    let stride = g.strides[2]
    var row = 0
    for c in 0..<channels {
        let plane = c * inD * inH * inW
        for kd in 0..<g.kernel[0] {
            for kh in 0..<g.kernel[1] {
                for kw in 0..<g.kernel[2] {
                    // Output columns whose tap w = ow * stride - pad + kw * dilation lies inside [0, inW).
                    let shift = kw * g.dilations[2] - g.padBegin[2]
                    let firstValid = shift >= 0 ? 0 : (-shift + stride - 1) / stride
                    let lastValid = inW - 1 - shift < 0 ? -1 : (inW - 1 - shift) / stride
                    // The first position's output depth, row and column; later runs step them
                    // (a small map's rows are short, and divisions per run cost more than the copies).
                    var position = positions.lowerBound
                    var (od, oh, ow) = (position / outW / outH, position / outW % outH, position % outW)
                    while position < positions.upperBound {
                        let end = min(positions.upperBound, position + outW - ow)
                        let count = end - position
                        let column = row * width + (position - positions.lowerBound)
                        let d = od * g.strides[0] - g.padBegin[0] + kd * g.dilations[0]
                        let h = oh * g.strides[1] - g.padBegin[1] + kh * g.dilations[1]
                        if d < 0 || d >= inD || h < 0 || h >= inH {
                            body(column, count, nil, stride)
                        } else {
                            let low = min(max(firstValid, ow), ow + count)
                            let high = max(min(lastValid + 1, ow + count), low)
                            if low > ow { body(column, low - ow, nil, stride) }
                            if high > low {
                                body(column + low - ow, high - low, plane + (d * inH + h) * inW + low * stride + shift, stride)
                            }
                            if ow + count > high { body(column + high - ow, ow + count - high, nil, stride) }
                        }
                        (position, ow, oh) = (end, 0, oh + 1)
                        if oh == outH { (od, oh) = (od + 1, 0) }
                    }
                    row += 1
                }
            }
        }
    }
}

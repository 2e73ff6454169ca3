import ONNXModel
import TensorCore

// Col2Im (PyTorch's fold): column blocks summed back into an image with Conv's col2im; its
// gradient is Conv's im2col.

extension OpRegistry {
    mutating func registerCol2Im() {
        register("Col2Im") { context in try Col2Im(context) }
        widenForHalfPrecision(["Col2Im"])
    }
}

/// `Col2Im` (opset 18): `[N, C·∏block_shape, L]` columns, one per block position in
/// lexicographic order, summed into an `[N, C, image_shape…]` image.
///
/// Column row `c·∏block + k` of block position `b` adds onto the pixel at
/// `b·strides − pad_begin + k·dilations` (per spatial axis, `k` the row's offset inside the
/// block), or nowhere when that falls in the padding. `L` must be the number of block positions,
/// `∏ ((image + pad_begin + pad_end − (block − 1)·dilation − 1) / stride + 1)`.
///
/// Every element type the spec allows among ours: integers wrap on overflow, booleans combine by
/// `or` (NumPy's `+=`, which the ONNX reference evaluator uses; onnxruntime has float32 only),
/// float16 sums in float32 and is rounded once. One to three spatial axes, as Conv.
struct Col2Im: DifferentiableOperator {
    /// Strides, dilations and pads from the attributes (the block comes from input 2).
    let geometry: WindowGeometry

    init(_ context: OpContext) throws {
        geometry = try WindowGeometry(context, kernelRequired: false)
    }

    /// The sizes of one fold, checked against each other.
    struct Plan {
        let batch, channels, blockVolume, positions, imageSize: Int
        /// The convolution whose im2col this inverts: its input is our image, its output our block grid.
        let window: WindowGeometry.Resolved
        let outputShape: [Int]

        /// Calls `body` with the first of a run of `(sample, channel)` planes and the run's length,
        /// covering every plane; runs never cross samples, and channels own disjoint planes, so
        /// the runs of one sample split over threads.
        func forEachChannelRun(_ body: (_ first: Int, _ count: Int) -> Void) {
            let rows = blockVolume * positions
            for n in 0..<batch {
                Parallel.forEach(channels, grain: max(1, 16_384 / max(rows, 1))) { run in
                    body(n * channels + run.lowerBound, run.count)
                }
            }
        }
    }

    func plan(input: [Int], image: [Int], block: [Int]) throws -> Plan {
        guard input.count == 3 else { throw OpError("input must be [N, C·∏block_shape, L], got \(input)") }
        let rank = image.count
        guard (1...3).contains(rank), block.count == rank else {
            throw OpError("image_shape \(image) and block_shape \(block) must list the same 1 to 3 spatial axes")
        }
        // Bounded so that window arithmetic cannot overflow, whatever a file declares.
        let limit = Int(Int32.max)
        guard image.allSatisfy({ (0...limit).contains($0) }), block.allSatisfy({ (1...limit).contains($0) }) else {
            throw OpError("image_shape \(image) must be in 0...\(limit) and block_shape \(block) in 1...\(limit)")
        }
        let (strides, dilations) = try geometry.steps(rank: rank)
        let (padBegin, padEnd) = try geometry.explicitPads(rank: rank)
        var blocks = [Int](repeating: 0, count: rank)
        for axis in 0..<rank {
            // Every term is below 2³¹, so only the product needs checking.
            let (reach, overflow) = (block[axis] - 1).multipliedReportingOverflow(by: dilations[axis])
            let span = image[axis] + padBegin[axis] + padEnd[axis] - reach - 1
            guard !overflow, span >= 0 else {
                throw OpError("a block of \(block[axis]) dilated by \(dilations[axis]) does not fit spatial axis \(axis) of \(image[axis]) with its pads")
            }
            blocks[axis] = span / strides[axis] + 1
        }
        let blockVolume = try Shape.elementCount(block)
        guard input[1] % blockVolume == 0 else {
            throw OpError("input's \(input[1]) rows do not split into blocks of \(blockVolume) (block_shape \(block))")
        }
        let positions = try Shape.elementCount(blocks)
        guard input[2] == positions else {
            throw OpError("input has \(input[2]) columns; image_shape \(image) holds \(positions) block positions \(blocks)")
        }
        let outputShape = [input[0], input[1] / blockVolume] + image
        let imageSize = try Shape.elementCount(image)
        _ = try Shape.elementCount(outputShape)
        let window = WindowGeometry.Resolved(
            input: image, output: blocks, kernel: block, strides: strides, dilations: dilations, padBegin: padBegin,
            padEnd: padEnd
        ).as3D
        return Plan(
            batch: input[0], channels: input[1] / blockVolume, blockVolume: blockVolume, positions: positions,
            imageSize: imageSize, window: window, outputShape: outputShape)
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let p = try plan(input: x.shape, image: inputs.required(1).integers(), block: inputs.required(2).integers())
        if x.dtype == .bool {  // or: a count of trues (int64 cannot wrap back to zero) that is not zero
            return [try fold(x.converted(to: .int64), p).converted(to: .bool)]
        }
        return [try fold(x, p)]
    }

    /// Each sample's columns added onto a zero image.
    func fold(_ x: Tensor, _ p: Plan) throws -> Tensor {
        let output = try Tensor(zeros: x.dtype, shape: p.outputShape)
        let (rows, columns) = (p.blockVolume * p.positions, p.imageSize)
        func run<T: ArithmeticScalar>(_ type: T.Type) {
            let (px, py) = (x.unsafeElements(as: T.self), output.unsafeMutableElements(as: T.self))
            p.forEachChannelRun { first, count in
                col2im(
                    px.address(at: first * rows, count: count * rows), channels: count, window: p.window,
                    positions: 0..<p.positions, into: py.address(at: first * columns, count: count * columns))
            }
        }
        try withExtendedLifetime(x) { try withArithmeticType(x.dtype, "Col2Im") { run($0) } }
        return output
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1, 2) }

    /// `∂input = im2col(g)`: each column entry receives the gradient of the pixel it was added
    /// to, zero where it fell in the padding.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        guard step.wants(0) else { return [nil, nil, nil] }
        let g = try step.gradient()
        let shape = try step.inputShape(0)
        let p = try plan(input: shape, image: step.input(1).integers(), block: step.input(2).integers())
        let gx = try Tensor(uninitialized: g.dtype, shape: shape)  // im2col writes every entry
        let (rows, columns) = (p.blockVolume * p.positions, p.imageSize)
        func run<T: GEMMScalar>(_ type: T.Type) {
            let (pg, px) = (g.unsafeElements(as: T.self), gx.unsafeMutableElements(as: T.self))
            p.forEachChannelRun { first, count in
                im2col(
                    pg.address(at: first * columns, count: count * columns), channels: count, window: p.window,
                    positions: 0..<p.positions, into: px.address(at: first * rows, count: count * rows))
            }
        }
        try withExtendedLifetime(g) { try withGEMMType(g.dtype, "Col2Im") { run($0) } }
        return [gx, nil, nil]
    }
}

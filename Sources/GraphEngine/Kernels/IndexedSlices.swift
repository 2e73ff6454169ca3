import TensorCore

/// The slices of a data tensor that an index tensor addresses, as flat element offsets: the one
/// plan behind GatherElements, GatherND, ScatterElements and ScatterND and their gradients.
///
/// The element-wise ops address single elements (`sliceSize` 1); the ND ops address the block
/// of data their index tuples leave open. Indices come from the model, so each is checked once,
/// here: negative ones count from the end of their axis, and one outside `[-extent, extent)` is
/// an error naming it and where it sits in the index tensor.
struct IndexedSlices {
    /// The flat offset into data of each addressed slice, in the index tensor's order.
    let offsets: [Int]
    /// Contiguous data elements per slice.
    let sliceSize: Int
    /// The shape of the gathered slices, one after another (of a scatter's updates).
    let shape: [Int]

    /// GatherElements / ScatterElements: each entry of `indices` (the rank of data, no extent
    /// above data's) takes the place of its own coordinate on `axis`.
    init(elementsOf indices: Tensor, dataShape: [Int], axis: Int) throws {
        guard indices.rank == dataShape.count else {
            throw OpError("indices \(indices.shape) must have the rank of data \(dataShape)")
        }
        if let bad = dataShape.indices.first(where: { $0 != axis && indices.shape[$0] > dataShape[$0] }) {
            throw OpError("indices \(indices.shape) are longer than data \(dataShape) on axis \(bad)")
        }
        let raw = try indices.integers()
        let extent = dataShape[axis]
        let strides = Shape.strides(dataShape)
        var walk = strides
        walk[axis] = 0
        let loop = try BroadcastLoop(shape: indices.shape, strides: [walk])
        let (length, step, axisStride) = (loop.length, loop.innerStrides[0], strides[axis])
        var offsets = [Int](repeating: 0, count: raw.count)
        var firstBad: Int?
        raw.withUnsafeBufferPointer { raw in
            offsets.withUnsafeMutableBufferPointer { offsets in
                loop.forEachRow { base, p in
                    for k in 0..<length {
                        let index = raw[p + k] < 0 ? raw[p + k] + extent : raw[p + k]
                        guard index >= 0, index < extent else {
                            firstBad = firstBad ?? p + k
                            continue
                        }
                        offsets[p + k] = base[0] + k * step + index * axisStride
                    }
                }
            }
        }
        if let bad = firstBad { throw IndexedSlices.outOfRange(raw[bad], at: bad, in: indices.shape, axis: axis, extent: extent) }
        self.init(offsets: offsets, sliceSize: 1, shape: indices.shape)
    }

    /// GatherND / ScatterND: the last axis of `indices` holds tuples of coordinates into data
    /// after its first `batchDims` axes, which both tensors share.
    init(tuplesOf indices: Tensor, dataShape: [Int], batchDims: Int) throws {
        let (q, r) = (indices.rank, dataShape.count)
        guard batchDims >= 0, batchDims < min(q, r) else {
            throw OpError("batch_dims \(batchDims) must be below the ranks of indices \(indices.shape) and data \(dataShape)")
        }
        let k = indices.shape[q - 1]
        guard k >= 1, k <= r - batchDims else {
            throw OpError("index tuples of length \(k) cannot address data \(dataShape) after \(batchDims) batch axes")
        }
        guard indices.shape[..<batchDims] == dataShape[..<batchDims] else {
            throw OpError("the batch axes of indices \(indices.shape) and data \(dataShape) differ")
        }
        let raw = try indices.integers()
        let strides = Shape.strides(dataShape)
        let tuplesPerBatch = indices.shape[batchDims..<(q - 1)].reduce(1, *)
        let batchStride = dataShape[batchDims...].reduce(1, *)
        var offsets = [Int](repeating: 0, count: raw.count / k)
        for t in offsets.indices {
            var offset = t / tuplesPerBatch * batchStride
            for c in 0..<k {
                let (axis, entry) = (batchDims + c, t * k + c)
                let index = raw[entry] < 0 ? raw[entry] + dataShape[axis] : raw[entry]
                guard index >= 0, index < dataShape[axis] else {
                    throw IndexedSlices.outOfRange(raw[entry], at: entry, in: indices.shape, axis: axis, extent: dataShape[axis])
                }
                offset += index * strides[axis]
            }
            offsets[t] = offset
        }
        let slice = Array(dataShape[(batchDims + k)...])
        self.init(offsets: offsets, sliceSize: slice.reduce(1, *), shape: indices.shape.dropLast() + slice)
    }

    private init(offsets: [Int], sliceSize: Int, shape: [Int]) {
        self.offsets = offsets
        self.sliceSize = sliceSize
        self.shape = shape
    }

    private static func outOfRange(_ index: Int, at position: Int, in shape: [Int], axis: Int, extent: Int) -> OpError {
        var coordinates = [Int](repeating: 0, count: shape.count)
        var rest = position
        for d in shape.indices.reversed() where shape[d] > 0 {
            coordinates[d] = rest % shape[d]
            rest /= shape[d]
        }
        return OpError("index \(index) at indices\(coordinates) is out of range for axis \(axis) of extent \(extent) (valid: \(-extent)...\(extent - 1))")
    }
}

// MARK: - Gather

extension IndexedSlices {
    /// The addressed slices of `data`, one after another, as a tensor of ``shape``.
    func gather(_ data: Tensor) throws -> Tensor {
        let output = try Tensor(uninitialized: data.dtype, shape: shape)
        func run<E>(_ type: E.Type) {
            let source = data.unsafeElements(bitsAs: E.self)
            let destination = output.unsafeMutableElements(bitsAs: E.self)
            offsets.withUnsafeBufferPointer { offsets in
                if sliceSize == 1 {
                    for t in offsets.indices { destination[t] = source[offsets[t]] }
                } else {
                    for t in offsets.indices {
                        destination.address(at: t * sliceSize, count: sliceSize)
                            .update(from: source.address(at: offsets[t], count: sliceSize), count: sliceSize)
                    }
                }
            }
        }
        withExtendedLifetime(data) { moving(data.dtype, run(UInt8.self), run(UInt16.self), run(UInt32.self), run(UInt64.self)) }
        return output
    }

    /// The adjoint of ``gather(_:)``: the slices of `gradient` added into zeros shaped like
    /// data, so a slice gathered twice receives both gradients.
    func gatherGradient(_ gradient: Tensor, dataShape: [Int]) throws -> Tensor {
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try gradient.withUnsafeBuffer(as: T.self) { g in
                try Tensor.build(T.self, shape: dataShape) { dx in
                    if sliceSize == 1 {
                        for t in offsets.indices { dx[offsets[t]] += g[t] }
                    } else {
                        for t in offsets.indices { for e in 0..<sliceSize { dx[offsets[t] + e] += g[t * sliceSize + e] } }
                    }
                }
            }
        }
        switch gradient.dtype {
        case .float32: return try run(Float.self)  // by name, so the loop specializes
        case .float16: return try gatherGradient(gradient.converted(to: .float32), dataShape: dataShape).converted(to: .float16)
        default: return try withFloatType(gradient.dtype, "gather") { try run($0) }
        }
    }
}

// MARK: - Scatter

/// How a scatter combines an update with the element already there (`reduction`, opset 16 and 18).
enum ScatterReduction: String {
    case none, add, mul, max, min
}

extension IndexedSlices {
    /// `data` with each addressed slice replaced by its slice of `updates` (shaped ``shape``),
    /// or combined with it under `reduction`; updates apply in order, so a slice addressed twice
    /// keeps the last (reduction none) or folds in both.
    func scatter(_ updates: Tensor, into data: Tensor, reduction: ScatterReduction) throws -> Tensor {
        guard updates.dtype == data.dtype, updates.shape == shape else {
            throw OpError("updates are \(updates.dtype)\(updates.shape); these indices and data need \(data.dtype)\(shape)")
        }
        if data.dtype == .float16 && reduction != .none {  // arithmetic in float32, rounded once
            return try scatter(updates.converted(to: .float32), into: data.converted(to: .float32), reduction: reduction).converted(to: .float16)
        }
        let output = try Tensor(uninitialized: data.dtype, shape: data.shape)
        withExtendedLifetime(data) { output.storage.base.copyMemory(from: data.storage.base, byteCount: data.byteCount) }
        let size = sliceSize
        func move<E>(_ type: E.Type) {
            let source = updates.unsafeElements(bitsAs: E.self)
            let destination = output.unsafeMutableElements(bitsAs: E.self)
            if size == 1 {  // element by element: a plain loop rather than a copy call per element
                for t in offsets.indices { destination[offsets[t]] = source[t] }
            } else {
                for t in offsets.indices {
                    destination.address(at: offsets[t], count: size).update(from: source.address(at: t * size, count: size), count: size)
                }
            }
        }
        func combine<T: ArithmeticScalar>(_ type: T.Type) {
            let u = updates.unsafeElements(as: T.self)
            let out = output.unsafeMutableElements(as: T.self)
            for t in offsets.indices {
                for e in 0..<size {
                    let (o, v) = (offsets[t] + e, u[t * size + e])
                    switch reduction {
                    case .add: out[o] = T.add(out[o], v)
                    case .mul: out[o] = T.multiply(out[o], v)
                    case .max: out[o] = v > out[o] || v != v ? v : out[o]
                    case .min: out[o] = v < out[o] || v != v ? v : out[o]
                    case .none: out[o] = v
                    }
                }
            }
        }
        try withExtendedLifetime(updates) {
            switch (reduction, data.dtype) {
            case (.none, _): moving(data.dtype, move(UInt8.self), move(UInt16.self), move(UInt32.self), move(UInt64.self))
            case (_, .float32): combine(Float.self)
            default: try withArithmeticType(data.dtype, "scatter with reduction '\(reduction)'") { combine($0) }
            }
        }
        return output
    }

    /// The gradients of ``scatter(_:into:reduction:)`` with respect to data and to updates,
    /// for reductions none and add; they only move elements, so any float type works.
    ///
    /// Under none, a slice written more than once kept only its last update: only that update
    /// receives the slice's gradient, and data receives none wherever an update landed.
    func scatterGradient(_ gradient: Tensor, reduction: ScatterReduction) throws -> (data: Tensor, updates: Tensor) {
        switch reduction {
        case .add: return (gradient, try gather(gradient))
        case .none: break
        default: throw OpError("scatter gradients cover reductions none and add, not '\(reduction)'")
        }
        let data = try Tensor(uninitialized: gradient.dtype, shape: gradient.shape)
        withExtendedLifetime(gradient) { data.storage.base.copyMemory(from: gradient.storage.base, byteCount: gradient.byteCount) }
        let updates = try Tensor(zeros: gradient.dtype, shape: shape)
        guard sliceSize > 0 else { return (data, updates) }
        // Offsets are multiples of the slice size, so each slot has one owner: its last update.
        var owner = [Int](repeating: -1, count: gradient.count / sliceSize)
        for t in offsets.indices { owner[offsets[t] / sliceSize] = t }
        let size = sliceSize
        func run<E: FixedWidthInteger>(_ type: E.Type) {
            let g = gradient.unsafeElements(bitsAs: E.self)
            let dData = data.unsafeMutableElements(bitsAs: E.self)
            let dUpdates = updates.unsafeMutableElements(bitsAs: E.self)
            for t in offsets.indices where owner[offsets[t] / size] == t {
                for e in 0..<size { dUpdates[t * size + e] = g[offsets[t] + e] }
            }
            // Every float type's zero is all-zero bits.
            for t in offsets.indices { for e in 0..<size { dData[offsets[t] + e] = 0 } }
        }
        withExtendedLifetime(gradient) { moving(gradient.dtype, run(UInt8.self), run(UInt16.self), run(UInt32.self), run(UInt64.self)) }
        return (data, updates)
    }
}

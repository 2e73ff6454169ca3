import TensorCore

/// Copies `source` (read with `strides` from element `offset`) into a new contiguous tensor of `shape`.
///
/// The one data-movement kernel behind Transpose, Expand and Slice: each is a strided view of its
/// input. Works on any element type by moving elements as same-sized unsigned integers.
func stridedCopy(_ source: Tensor, shape: [Int], strides: [Int], offset: Int = 0) throws -> Tensor {
    let output = try Tensor(uninitialized: source.dtype, shape: shape)  // the gather writes every element
    transfer(strided: source, contiguous: output, shape: shape, strides: strides, offset: offset, gather: true)
    return output
}

/// `source` read as a strided view, for an op whose result nobody writes: a contiguous view (axes
/// of extent 1 aside) is a block of `source`, shared where ``Tensor/contiguousBlock(from:shape:)``
/// shares one; any other is copied by ``stridedCopy(_:shape:strides:offset:)``.
func stridedView(_ source: Tensor, shape: [Int], strides: [Int], offset: Int = 0) throws -> Tensor {
    var expected = 1
    for axis in shape.indices.reversed() where shape[axis] != 1 {
        guard strides[axis] == expected else { return try stridedCopy(source, shape: shape, strides: strides, offset: offset) }
        expected *= shape[axis]
    }
    return try source.contiguousBlock(from: offset, shape: shape)
}

/// The adjoint of ``stridedCopy``: writes the contiguous `source` into `destination` at the
/// positions a strided view (`strides`, from element `offset`) of `destination` would read.
/// Positions must be distinct, as they are for Slice.
func stridedScatter(_ source: Tensor, into destination: Tensor, strides: [Int], offset: Int) throws {
    guard source.dtype == destination.dtype else { throw OpError("cannot scatter \(source.dtype) into \(destination.dtype)") }
    transfer(strided: destination, contiguous: source, shape: source.shape, strides: strides, offset: offset, gather: false)
}

/// Moves elements between a strided view of `strided` and the contiguous `contiguous`: gathering
/// reads the view, scattering writes it. Axes the view walks contiguously are coalesced first.
private func transfer(strided: Tensor, contiguous: Tensor, shape: [Int], strides: [Int], offset: Int, gather: Bool) {
    guard contiguous.count > 0 else { return }
    var dims: [Int] = []
    var steps: [Int] = []
    for axis in 0..<shape.count where shape[axis] != 1 {
        if let last = dims.last, steps[steps.count - 1] == strides[axis] * shape[axis] {
            dims[dims.count - 1] = last * shape[axis]
            steps[steps.count - 1] = strides[axis]
        } else {
            dims.append(shape[axis])
            steps.append(strides[axis])
        }
    }
    let length = dims.last ?? 1
    let step = steps.last ?? 1
    let outer = dims.count - 1
    let lines = contiguous.count / length
    func run<T>(_ type: T.Type) {
        // Gathering writes `flat`, scattering writes `view`.
        let view = strided.unsafeMutableElements(bitsAs: T.self)
        let flat = contiguous.unsafeMutableElements(bitsAs: T.self)
        // A transpose of the last two axes (the view's last axis strided, the one before it
        // contiguous in the source) reads a tile of lines at once, a cache line's worth of each
        // source row: line by line, every source line would be fetched once per element in it.
        let tile = max(1, 64 / MemoryLayout<T>.stride)
        let tiled = gather && step != 1 && outer >= 1 && steps[outer - 1] == 1 && dims[outer - 1] >= tile
        // Lines (runs along the last axis) are independent: the threads take consecutive ones,
        // each starting its counter from its first line's index.
        Parallel.forEach(lines, grain: max(1, copyGrainBytes / (length * MemoryLayout<T>.stride))) { range in
            var counter = [Int](repeating: 0, count: max(outer, 0))
            var position = offset
            var rest = range.lowerBound
            for axis in stride(from: outer - 1, through: 0, by: -1) {
                counter[axis] = rest % dims[axis]
                rest /= dims[axis]
                position += counter[axis] * steps[axis]
            }
            var line = range.lowerBound
            // Moves on `count` lines, which never pass the end of the second-to-last axis.
            func advance(_ count: Int) {
                line += count
                var axis = outer - 1
                var carry = count
                while axis >= 0 {
                    counter[axis] += carry
                    position += carry * steps[axis]
                    if counter[axis] < dims[axis] { break }
                    position -= steps[axis] * dims[axis]
                    counter[axis] = 0
                    carry = 1
                    axis -= 1
                }
            }
            while line < range.upperBound {
                let o = line * length
                if tiled, counter[outer - 1] % tile == 0, counter[outer - 1] + tile <= dims[outer - 1], line + tile <= range.upperBound {
                    for i in 0..<length {
                        let source = position + i * step
                        for t in 0..<tile { flat[o + t * length + i] = view[source + t] }
                    }
                    advance(tile)
                    continue
                }
                if gather {
                    if step == 1 {
                        flat.address(at: o, count: length).update(from: view.address(at: position, count: length), count: length)
                    } else {
                        for i in 0..<length { flat[o + i] = view[position + i * step] }
                    }
                } else {
                    for i in 0..<length { view[position + i * step] = flat[o + i] }
                }
                advance(1)
            }
        }
    }
    withExtendedLifetime((strided, contiguous)) { moving(strided.dtype, run(UInt8.self), run(UInt16.self), run(UInt32.self), run(UInt64.self)) }
}

/// Runs one of four loops by element width: kernels that only move elements (copies, gathers,
/// scatters, padding) need no more than that, and move them as same-sized unsigned integers.
@inline(__always)
func moving(_ dtype: DType, _ byte: @autoclosure () -> Void, _ half: @autoclosure () -> Void, _ word: @autoclosure () -> Void, _ double: @autoclosure () -> Void) {
    switch dtype.byteSize {
    case 1: byte()
    case 2: half()
    case 4: word()
    default: double()
    }
}

/// Bytes a thread moves at the least before a copy is split over threads.
let copyGrainBytes = 1 << 16

/// Copies `rows` blocks of `blockBytes` bytes from `source` (rows `sourceStride` bytes apart) to
/// `destination` (rows `destinationStride` bytes apart): the inner loop of Concat, Split and Gather.
///
/// The threads take equal shares of the bytes, so one large block splits as well as many small ones.
func copyBlocks(
    from source: UnsafeRawPointer, sourceStride: Int, to destination: UnsafeMutableRawPointer, destinationStride: Int,
    rows: Int, blockBytes: Int
) {
    guard blockBytes > 0 else { return }
    Parallel.forEach(rows * blockBytes, grain: copyGrainBytes) { range in
        var row = range.lowerBound / blockBytes
        var start = range.lowerBound - row * blockBytes
        var remaining = range.count
        while remaining > 0 {
            let bytes = min(blockBytes - start, remaining)
            (destination + row * destinationStride + start).copyMemory(from: source + row * sourceStride + start, byteCount: bytes)
            remaining -= bytes
            row += 1
            start = 0
        }
    }
}

import TensorCore

/// Copies `source` (read with `strides` from element `offset`) into a new contiguous tensor of `shape`.
///
/// The one data-movement kernel behind Transpose, Expand and Slice: each is a strided view of its
/// input. Works on any element type by moving elements as same-sized unsigned integers.
func stridedCopy(_ source: Tensor, shape: [Int], strides: [Int], offset: Int = 0) throws -> Tensor {
    let output = try Tensor(zeros: source.dtype, shape: shape)
    guard output.count > 0 else { return output }
    // Coalesce axes the view walks contiguously; drop size-1 axes.
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
    func run<T>(_ type: T.Type) {
        let input = source.storage.base.assumingMemoryBound(to: T.self)
        let out = output.storage.base.assumingMemoryBound(to: T.self)
        let length = dims.last ?? 1
        let step = steps.last ?? 1
        let outer = dims.count - 1
        var counter = [Int](repeating: 0, count: max(outer, 0))
        var position = offset
        var o = 0
        while true {
            if step == 1 {
                (out + o).update(from: input + position, count: length)
            } else {
                for i in 0..<length { out[o + i] = input[position + i * step] }
            }
            o += length
            var axis = outer - 1
            while axis >= 0 {
                counter[axis] += 1
                position += steps[axis]
                if counter[axis] < dims[axis] { break }
                position -= steps[axis] * dims[axis]
                counter[axis] = 0
                axis -= 1
            }
            if axis < 0 { return }
        }
    }
    withExtendedLifetime(source) {
        switch source.dtype.byteSize {
        case 1: run(UInt8.self)
        case 2: run(UInt16.self)
        case 4: run(UInt32.self)
        default: run(UInt64.self)
        }
    }
    return output
}

/// The adjoint of ``stridedCopy``: writes the contiguous `source` into `destination` at the
/// positions a strided view (`strides`, from element `offset`) of `destination` would read.
/// Positions must be distinct, as they are for Slice.
func stridedScatter(_ source: Tensor, into destination: Tensor, strides: [Int], offset: Int) throws {
    guard source.dtype == destination.dtype else { throw OpError("cannot scatter \(source.dtype) into \(destination.dtype)") }
    let dims = source.shape
    guard source.count > 0 else { return }
    let size = source.dtype.byteSize
    withExtendedLifetime((source, destination)) {
        var counter = [Int](repeating: 0, count: dims.count)
        var position = offset
        for i in 0..<source.count {
            (destination.storage.base + position * size).copyMemory(from: source.storage.base + i * size, byteCount: size)
            var axis = dims.count - 1
            while axis >= 0 {
                counter[axis] += 1
                position += strides[axis]
                if counter[axis] < dims[axis] { break }
                position -= strides[axis] * dims[axis]
                counter[axis] = 0
                axis -= 1
            }
        }
    }
}

/// Copies `rows` blocks of `blockBytes` bytes from `source` (rows `sourceStride` bytes apart) to
/// `destination` (rows `destinationStride` bytes apart): the inner loop of Concat, Split and Gather.
func copyBlocks(
    from source: UnsafeRawPointer, sourceStride: Int, to destination: UnsafeMutableRawPointer, destinationStride: Int,
    rows: Int, blockBytes: Int
) {
    guard blockBytes > 0 else { return }
    for row in 0..<rows {
        (destination + row * destinationStride).copyMemory(from: source + row * sourceStride, byteCount: blockBytes)
    }
}

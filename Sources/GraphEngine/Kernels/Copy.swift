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
    func run<T>(_ type: T.Type) {
        // Gathering writes `flat`, scattering writes `view`.
        let view = strided.unsafeMutableElements(bitsAs: T.self)
        let flat = contiguous.unsafeMutableElements(bitsAs: T.self)
        let length = dims.last ?? 1
        let step = steps.last ?? 1
        let outer = dims.count - 1
        var counter = [Int](repeating: 0, count: max(outer, 0))
        var position = offset
        var o = 0
        while true {
            if gather {
                if step == 1 {
                    flat.address(at: o, count: length).update(from: view.address(at: position, count: length), count: length)
                } else {
                    for i in 0..<length { flat[o + i] = view[position + i * step] }
                }
            } else {
                for i in 0..<length { view[position + i * step] = flat[o + i] }
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

import TensorCore

/// An element-wise loop over up to three operands broadcast to one output shape (NumPy rules).
///
/// Axes are coalesced first (adjacent axes that every operand walks contiguously merge, size-1
/// axes vanish), so a same-shape add is one flat row and a per-channel bias over NCHW is one
/// row per (n, c). The caller's closure runs once per innermost row, with each operand's start
/// offset; ``length`` and ``innerStrides`` describe the row.
struct BroadcastLoop {
    /// The broadcast output shape.
    let shape: [Int]
    /// Elements in the output.
    let count: Int
    private let dims: [Int]
    private let strides: [[Int]]

    /// Elements per innermost row.
    var length: Int { dims.last ?? 1 }
    /// Per operand, the stride between consecutive elements of a row (0 when broadcast).
    var innerStrides: [Int] { strides.map { $0.last ?? 0 } }

    init(_ shapes: [[Int]]) throws {
        let shape = try Shape.broadcast(shapes)
        try self.init(shape: shape, strides: shapes.map { Shape.broadcastStrides($0, to: shape) })
    }

    /// A loop over `shape` in which each operand walks its own `strides` (in elements, one per
    /// axis): a permuted, repeated or index-driven view rather than a broadcast.
    init(shape: [Int], strides full: [[Int]]) throws {
        self.shape = shape
        self.count = try Shape.elementCount(shape)
        let operands = full.count
        var dims: [Int] = []
        var strides = [[Int]](repeating: [], count: operands)
        for axis in 0..<shape.count where shape[axis] != 1 {
            if let last = dims.last,
                (0..<operands).allSatisfy({ strides[$0][strides[$0].count - 1] == full[$0][axis] * shape[axis] })
            {
                dims[dims.count - 1] = last * shape[axis]
                for operand in 0..<operands { strides[operand][strides[operand].count - 1] = full[operand][axis] }
            } else {
                dims.append(shape[axis])
                for operand in 0..<operands { strides[operand].append(full[operand][axis]) }
            }
        }
        self.dims = dims
        self.strides = strides
    }

    /// Calls `body(offsets, outputOffset)` for each innermost row, in row-major output order.
    func forEachRow(_ body: (_ offsets: UnsafeBufferPointer<Int>, _ output: Int) -> Void) {
        guard count > 0 else { return }
        let operands = strides.count
        let outer = dims.dropLast()
        var counter = [Int](repeating: 0, count: outer.count)
        var offsets = [Int](repeating: 0, count: operands)
        var output = 0
        let rowLength = length
        offsets.withUnsafeMutableBufferPointer { offsets in
            while true {
                body(UnsafeBufferPointer(offsets), output)
                output += rowLength
                // Advance the outer counter like an odometer.
                var axis = outer.count - 1
                while axis >= 0 {
                    counter[axis] += 1
                    for k in 0..<operands { offsets[k] += strides[k][axis] }
                    if counter[axis] < dims[axis] { break }
                    for k in 0..<operands { offsets[k] -= strides[k][axis] * dims[axis] }
                    counter[axis] = 0
                    axis -= 1
                }
                if axis < 0 { return }
            }
        }
    }
}

/// Applies `f` element-wise to two broadcast tensors of element type `T`, producing `R`s; long
/// rows split over the kernel threads.
@inline(__always)
func broadcastBinary<T: TensorScalar, R: TensorScalar>(
    _ a: Tensor, _ b: Tensor, as type: T.Type, _ f: (T, T) -> R
) throws -> Tensor {
    let loop = try BroadcastLoop([a.shape, b.shape])
    let strides = loop.innerStrides
    let (sa, sb, length) = (strides[0], strides[1], loop.length)
    return try a.withUnsafeBuffer(as: T.self) { x in
        try b.withUnsafeBuffer(as: T.self) { y in
            try Tensor.build(R.self, shape: loop.shape, writesAll: true) { out in
                loop.forEachRow { offsets, o in
                    let (oa, ob) = (offsets[0], offsets[1])
                    Parallel.forEach(length) { range in
                        if sa == 1 && sb == 1 {
                            for i in range { out[o + i] = f(x[oa + i], y[ob + i]) }
                        } else if sa == 1 && sb == 0 {
                            let scalar = y[ob]
                            for i in range { out[o + i] = f(x[oa + i], scalar) }
                        } else {
                            for i in range { out[o + i] = f(x[oa + i * sa], y[ob + i * sb]) }
                        }
                    }
                }
            }
        }
    }
}

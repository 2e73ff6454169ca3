/// Shape arithmetic shared by tensors and ops: element counts, strides, axes and broadcasting.
package enum Shape {
    /// The number of elements of `shape`, checking for negative dimensions and overflow.
    package static func elementCount(_ shape: [Int]) throws -> Int {
        var count = 1
        for dim in shape {
            guard dim >= 0 else { throw TensorError.negativeDimension(shape: shape) }
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw TensorError.shapeTooLarge(shape: shape) }
            count = product
        }
        return count
    }

    /// Row-major strides, in elements.
    package static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    /// Maps a possibly negative axis into `[0, rank)`.
    package static func normalize(axis: Int, rank: Int) throws -> Int {
        let normalized = axis < 0 ? axis + rank : axis
        guard normalized >= 0, normalized < rank else { throw TensorError.axisOutOfRange(axis: axis, rank: rank) }
        return normalized
    }

    /// The NumPy broadcast of several shapes.
    package static func broadcast(_ shapes: [Int]...) throws -> [Int] { try broadcast(shapes) }

    /// The NumPy broadcast of several shapes.
    package static func broadcast(_ shapes: [[Int]]) throws -> [Int] {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for shape in shapes {
            let offset = rank - shape.count
            for (i, dim) in shape.enumerated() {
                let current = result[offset + i]
                if current == dim || dim == 1 { continue }
                if current == 1 {
                    result[offset + i] = dim
                } else {
                    throw TensorError.notBroadcastable(shapes[0], shape)
                }
            }
        }
        return result
    }

    /// Strides for reading a tensor of shape `shape` as if it had the broadcast shape `target`:
    /// broadcast dimensions get stride 0.
    package static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
        let own = strides(shape)
        let offset = target.count - shape.count
        return (0..<target.count).map { axis in
            let i = axis - offset
            return i < 0 || shape[i] == 1 ? 0 : own[i]
        }
    }
}

import TensorCore

/// Data-movement helpers other modules use on tensors (the ops use the same kernels).
extension Tensor {
    /// This tensor with its axes permuted: axis `i` of the result is axis `perm[i]` of this one.
    package func transposed(_ perm: [Int]) throws -> Tensor {
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw OpError("\(perm) is not a permutation of the \(rank) axes of \(shape)")
        }
        let strides = Shape.strides(shape)
        return try stridedCopy(self, shape: perm.map { shape[$0] }, strides: perm.map { strides[$0] })
    }

    /// The elements `range` along `axis`.
    package func sliced(axis: Int, _ range: Range<Int>) throws -> Tensor {
        let axis = try Shape.normalize(axis: axis, rank: rank)
        guard range.lowerBound >= 0, range.upperBound <= shape[axis] else {
            throw OpError("range \(range) is outside axis \(axis) of \(shape)")
        }
        var result = shape
        result[axis] = range.count
        let strides = Shape.strides(shape)
        return try stridedCopy(self, shape: result, strides: strides, offset: range.lowerBound * strides[axis])
    }
}

extension Tensor {
    /// The element-wise product with a tensor that broadcasts to this one's shape.
    package func multiplied(by other: Tensor) throws -> Tensor {
        guard other.dtype == dtype else { throw OpError("cannot multiply \(dtype) by \(other.dtype)") }
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor { try broadcastBinary(self, other, as: T.self, T.multiply) }
        return try withArithmeticType(dtype, "multiply") { try run($0) }
    }
}

extension Tensor {
    /// `max(x, 0)` element by element, for floating-point tensors (float16 through float32, exactly).
    package func positivePart() throws -> Tensor {
        if dtype == .float16 { return try converted(to: .float32).positivePart().converted(to: .float16) }
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor { try mapElements(self, as: T.self) { $0 > 0 ? $0 : 0 } }
        return try withFloatType(dtype, "positivePart") { try run($0) }
    }
}

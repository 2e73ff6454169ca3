/// Errors raised while building, reading or writing tensors.
public enum TensorError: Error, Equatable, CustomStringConvertible {
    /// A dimension was negative.
    case negativeDimension(shape: [Int])
    /// The element count or byte size of a shape does not fit in memory addressing.
    case shapeTooLarge(shape: [Int])
    /// A tensor would need more memory than the machine has.
    case allocationTooLarge(bytes: Int, limit: Int)
    /// The number of elements supplied does not match the shape.
    case countMismatch(shape: [Int], expected: Int, got: Int)
    /// A tensor was read with a Swift type that is not its element type.
    case dtypeMismatch(expected: DType, got: DType)
    /// Two shapes cannot be broadcast together (NumPy rules).
    case notBroadcastable([Int], [Int])
    /// An axis is outside `[-rank, rank)`.
    case axisOutOfRange(axis: Int, rank: Int)
    /// A `.npy` file could not be read or written.
    case npy(path: String, reason: String)
    /// A LAPACK routine rejected its input or did not converge.
    case linearAlgebra(String)

    public var description: String {
        switch self {
        case .negativeDimension(let shape): "shape \(shape) has a negative dimension"
        case .shapeTooLarge(let shape): "shape \(shape) holds more elements than can be addressed"
        case .allocationTooLarge(let bytes, let limit):
            "a tensor of \(bytes) bytes was requested, more than this machine's \(limit) bytes of memory"
        case .countMismatch(let shape, let expected, let got):
            "shape \(shape) needs \(expected) elements but \(got) were given"
        case .dtypeMismatch(let expected, let got): "expected a \(expected) tensor, got \(got)"
        case .notBroadcastable(let a, let b): "shapes \(a) and \(b) cannot be broadcast together"
        case .axisOutOfRange(let axis, let rank): "axis \(axis) is out of range for rank \(rank)"
        case .npy(let path, let reason): "\(path): \(reason)"
        case .linearAlgebra(let reason): reason
        }
    }
}

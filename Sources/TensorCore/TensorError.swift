/// Errors raised while building, reading or writing tensors.
public enum TensorError: Error, Equatable, CustomStringConvertible {
    /// A dimension was negative.
    case negativeDimension(shape: [Int])
    /// The element count or byte size of a shape does not fit in memory addressing.
    case shapeTooLarge(shape: [Int])
    /// A buffer would not fit in the ``MemoryBudget`` beside what is already in use.
    case overBudget(what: String, bytes: Int, inUse: Int, limit: Int)
    /// The system refused memory the budget allowed.
    case allocationFailed(what: String, bytes: Int)
    /// A memory size (`--max-memory`) could not be read.
    case invalidSize(text: String)
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

    /// The problem in words.
    public var description: String {
        switch self {
        case .negativeDimension(let shape): "shape \(shape) has a negative dimension"
        case .shapeTooLarge(let shape): "shape \(shape) holds more elements than can be addressed"
        case .overBudget(let what, let bytes, let inUse, let limit):
            "\(what) needs \(MemoryBudget.describe(bytes)) (\(bytes) bytes), more than the memory budget allows ("
                + MemoryBudget.describe(limit) + (inUse >= 1 << 20 ? ", \(MemoryBudget.describe(inUse)) already in use" : "")
                + "; set it with --max-memory)"
        case .allocationFailed(let what, let bytes):
            "the system refused the \(MemoryBudget.describe(bytes)) that \(what) needs"
        case .invalidSize(let text):
            "'\(text)' is not a memory size; give bytes or a number with K, M, G or T (powers of 1024), e.g. 4G or 512M"
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

/// The element types a ``Tensor`` can hold.
///
/// These are the ONNX tensor element types an exported image classifier uses. Raw values are
/// ours; ``ONNXModel`` maps them to and from the ONNX `TensorProto.DataType` numbers.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    case float32, float16, float64, int64, int32, int8, uint8, bool

    /// Bytes one element occupies in memory.
    public var byteSize: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16: 2
        case .int8, .uint8, .bool: 1
        }
    }

    /// Whether the type is a floating-point type.
    public var isFloatingPoint: Bool { self == .float32 || self == .float16 || self == .float64 }

    public var description: String { rawValue }
}

/// A Swift scalar type that is the element type of a ``DType``.
public protocol TensorScalar: Sendable {
    /// The tensor element type this Swift type stores.
    static var dtype: DType { get }
    /// The additive identity, used to initialise buffers.
    static var zero: Self { get }
}

extension Float: TensorScalar { public static var dtype: DType { .float32 } }
extension Double: TensorScalar { public static var dtype: DType { .float64 } }
extension Int64: TensorScalar { public static var dtype: DType { .int64 } }
extension Int32: TensorScalar { public static var dtype: DType { .int32 } }
extension Int8: TensorScalar { public static var dtype: DType { .int8 } }
extension UInt8: TensorScalar { public static var dtype: DType { .uint8 } }
extension Bool: TensorScalar {
    public static var dtype: DType { .bool }
    public static var zero: Bool { false }
}

/// The raw bits of an IEEE 754 half-precision number; the storage type of `.float16` tensors.
///
/// Kept as bits rather than Swift's `Float16`, which is unavailable on some Apple targets.
public struct Half: TensorScalar, Hashable {
    public var bits: UInt16
    public init(bits: UInt16) { self.bits = bits }
    public static var dtype: DType { .float16 }
    public static var zero: Half { Half(bits: 0) }
}

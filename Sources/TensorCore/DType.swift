/// The element types a ``Tensor`` can hold.
///
/// These are the ONNX tensor element types an exported image classifier uses. Raw values are
/// ours; the ONNX reader maps them to and from the ONNX `TensorProto.DataType` numbers.
public enum DType: String, Sendable, CaseIterable, CustomStringConvertible {
    /// IEEE 754 single precision.
    case float32
    /// IEEE 754 half precision, stored as ``Half``.
    case float16
    /// IEEE 754 double precision.
    case float64
    /// 64-bit signed integers.
    case int64
    /// 32-bit signed integers.
    case int32
    /// 8-bit signed integers.
    case int8
    /// 8-bit unsigned integers.
    case uint8
    /// Booleans, one byte each.
    case bool

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

    /// The name, as in `float32`.
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
    /// `.bool`.
    public static var dtype: DType { .bool }
    /// `false`.
    public static var zero: Bool { false }
}

/// The raw bits of an IEEE 754 half-precision number; the storage type of `.float16` tensors.
///
/// Kept as bits rather than Swift's `Float16`, which is unavailable on some Apple targets.
public struct Half: TensorScalar, Hashable {
    /// The IEEE 754 binary16 bit pattern.
    public var bits: UInt16
    /// The number with bit pattern `bits`.
    public init(bits: UInt16) { self.bits = bits }
    /// `.float16`.
    public static var dtype: DType { .float16 }
    /// Positive zero.
    public static var zero: Half { Half(bits: 0) }
}

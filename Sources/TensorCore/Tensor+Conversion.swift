/// A scalar that converts to and from the other tensor element types with NumPy/ONNX `Cast` rules.
///
/// Integers travel as `Int64` and floating-point values as `Double`, so no conversion loses more
/// than the destination type must. Float-to-integer truncates toward zero and saturates; NaN
/// becomes 0 (ONNX leaves both undefined; we only promise not to trap).
package protocol ConvertibleScalar: TensorScalar {
    /// Whether values are integers (bools count as integers 0 and 1).
    static var isIntegral: Bool { get }
    var int64Value: Int64 { get }
    var doubleValue: Double { get }
    init(int64Value: Int64)
    init(doubleValue: Double)
}

extension ConvertibleScalar {
    /// This value converted to `D`.
    @inlinable package func converted<D: ConvertibleScalar>(to: D.Type) -> D {
        Self.isIntegral ? D(int64Value: int64Value) : D(doubleValue: doubleValue)
    }
}

/// Truncates toward zero and clamps into `T`'s range; NaN gives 0.
@usableFromInline func saturatingInteger<T: FixedWidthInteger>(_ value: Double) -> T {
    if value.isNaN { return 0 }
    if value <= Double(T.min) { return T.min }
    if value >= Double(T.max) { return T.max }
    return T(value.rounded(.towardZero))
}

extension Float: ConvertibleScalar {
    package static var isIntegral: Bool { false }
    package var int64Value: Int64 { saturatingInteger(Double(self)) }
    package var doubleValue: Double { Double(self) }
    package init(int64Value: Int64) { self = Float(int64Value) }
    package init(doubleValue: Double) { self = Float(doubleValue) }
}

extension Double: ConvertibleScalar {
    package static var isIntegral: Bool { false }
    package var int64Value: Int64 { saturatingInteger(self) }
    package var doubleValue: Double { self }
    package init(int64Value: Int64) { self = Double(int64Value) }
    package init(doubleValue: Double) { self = doubleValue }
}

extension Half: ConvertibleScalar {
    package static var isIntegral: Bool { false }
    package var int64Value: Int64 { saturatingInteger(Double(floatValue)) }
    package var doubleValue: Double { Double(floatValue) }
    package init(int64Value: Int64) { self.init(Float(int64Value)) }
    package init(doubleValue: Double) { self.init(Float(doubleValue)) }
}

extension Bool: ConvertibleScalar {
    package static var isIntegral: Bool { true }
    package var int64Value: Int64 { self ? 1 : 0 }
    package var doubleValue: Double { self ? 1 : 0 }
    package init(int64Value: Int64) { self = int64Value != 0 }
    package init(doubleValue: Double) { self = doubleValue != 0 }
}

/// Integer element types convert with wrap-around between integers, as NumPy's `astype` does.
package protocol ConvertibleInteger: ConvertibleScalar, FixedWidthInteger {}

extension ConvertibleInteger {
    package static var isIntegral: Bool { true }
    package var int64Value: Int64 { Int64(truncatingIfNeeded: self) }
    package var doubleValue: Double { Double(self) }
    package init(int64Value: Int64) { self.init(truncatingIfNeeded: int64Value) }
    package init(doubleValue: Double) { self = saturatingInteger(doubleValue) }
}

extension Int64: ConvertibleInteger {}
extension Int32: ConvertibleInteger {}
extension Int8: ConvertibleInteger {}
extension UInt8: ConvertibleInteger {}

extension DType {
    /// The Swift scalar type that stores this element type.
    package var scalarType: any ConvertibleScalar.Type {
        switch self {
        case .float32: Float.self
        case .float16: Half.self
        case .float64: Double.self
        case .int64: Int64.self
        case .int32: Int32.self
        case .int8: Int8.self
        case .uint8: UInt8.self
        case .bool: Bool.self
        }
    }
}

extension Tensor {
    /// This tensor with its elements converted to `target` (ONNX `Cast` semantics).
    public func converted(to target: DType) throws -> Tensor {
        if target == dtype { return self }
        func read<S: ConvertibleScalar>(_ source: S.Type) throws -> Tensor {
            func write<D: ConvertibleScalar>(_ destination: D.Type) throws -> Tensor {
                try withUnsafeBuffer(as: S.self) { input in
                    try Tensor.build(D.self, shape: shape) { output in
                        for i in 0..<input.count { output[i] = input[i].converted(to: D.self) }
                    }
                }
            }
            return try write(target.scalarType)
        }
        return try read(dtype.scalarType)
    }

    /// The elements of an integer tensor as `Int`s: how shape-like inputs (axes, pads, shapes) are read.
    public func integers() throws -> [Int] {
        switch dtype {
        case .int64: try scalars(as: Int64.self).map { Int($0) }
        case .int32: try scalars(as: Int32.self).map { Int($0) }
        default: throw TensorError.dtypeMismatch(expected: .int64, got: dtype)
        }
    }

    /// The elements of a floating-point or integer tensor as `Double`s.
    public func doubles() throws -> [Double] {
        if dtype == .float32 {  // the common case, without a generic call per element
            return try withUnsafeBuffer(as: Float.self) { values in values.map { Double($0) } }
        }
        func read<S: ConvertibleScalar>(_ type: S.Type) throws -> [Double] {
            try withUnsafeBuffer(as: S.self) { values in values.map { $0.doubleValue } }
        }
        return try read(dtype.scalarType)
    }
}

import Foundation
import TensorCore

/// Element types the arithmetic ops accept, with ONNX semantics that never trap.
///
/// Integer arithmetic wraps on overflow and integer division by zero yields 0 (ONNX leaves both
/// undefined; we only promise not to crash on them).
protocol ArithmeticScalar: ConvertibleScalar, Comparable {
    static func add(_ a: Self, _ b: Self) -> Self
    static func subtract(_ a: Self, _ b: Self) -> Self
    static func multiply(_ a: Self, _ b: Self) -> Self
    static func divide(_ a: Self, _ b: Self) -> Self
    /// `Mod`: `fmod` (sign of the dividend) or, for integers when `fmod` is false, the sign of the divisor.
    static func remainder(_ a: Self, _ b: Self, fmod: Bool) -> Self
    static func negate(_ a: Self) -> Self
}

extension ArithmeticScalar where Self: BinaryFloatingPoint {
    static func add(_ a: Self, _ b: Self) -> Self { a + b }
    static func subtract(_ a: Self, _ b: Self) -> Self { a - b }
    static func multiply(_ a: Self, _ b: Self) -> Self { a * b }
    static func divide(_ a: Self, _ b: Self) -> Self { a / b }
    static func negate(_ a: Self) -> Self { -a }
    static func remainder(_ a: Self, _ b: Self, fmod: Bool) -> Self {
        let r = a.truncatingRemainder(dividingBy: b)
        // fmod = 0 on floats: the result takes the divisor's sign, as Python's % does.
        if !fmod && r != 0 && (r < 0) != (b < 0) { return r + b }
        return r
    }
}

extension Float: ArithmeticScalar {}
extension Double: ArithmeticScalar {}

extension ArithmeticScalar where Self: FixedWidthInteger {
    static func add(_ a: Self, _ b: Self) -> Self { a &+ b }
    static func subtract(_ a: Self, _ b: Self) -> Self { a &- b }
    static func multiply(_ a: Self, _ b: Self) -> Self { a &* b }
    static func divide(_ a: Self, _ b: Self) -> Self {
        if b == 0 { return 0 }
        if Self.isSigned && b == -1 { return 0 &- a }  // Self.min / -1 overflows
        return a / b
    }
    static func negate(_ a: Self) -> Self { 0 &- a }
    static func remainder(_ a: Self, _ b: Self, fmod: Bool) -> Self {
        if b == 0 || (Self.isSigned && b == -1) { return 0 }
        let r = a % b
        if !fmod && r != 0 && (r < 0) != (b < 0) { return r &+ b }
        return r
    }
}

extension Int64: ArithmeticScalar {}
extension Int32: ArithmeticScalar {}
extension Int8: ArithmeticScalar {}
extension UInt8: ArithmeticScalar {}

/// Dispatches `body` on the arithmetic Swift type of `dtype`; float16 and bool are not arithmetic.
/// (The arithmetic types are the reducible ones, so one switch serves both.)
func withArithmeticType<R>(_ dtype: DType, _ op: String, _ body: (any ArithmeticScalar.Type) throws -> R) throws -> R {
    try withReducibleType(dtype, op) { try body($0) }
}

/// Dispatches `body` on the floating-point Swift type of `dtype`.
func withFloatType<R>(_ dtype: DType, _ op: String, _ body: (any FloatKernelScalar.Type) throws -> R) throws -> R {
    switch dtype {
    case .float32: return try body(Float.self)
    case .float64: return try body(Double.self)
    default: throw OpError("\(op) needs float32 or float64 input, got \(dtype)")
    }
}

/// Floating-point element types with the transcendental functions the ops need.
protocol FloatKernelScalar: ArithmeticScalar, BinaryFloatingPoint {
    static func exp(_ x: Self) -> Self
    static func erf(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func sqrt(_ x: Self) -> Self
    static func pow(_ x: Self, _ y: Self) -> Self
    static func log(_ x: Self) -> Self
}

extension Float: FloatKernelScalar {
    static func exp(_ x: Float) -> Float { Foundation.exp(x) }

    /// erf as a rational function of x on [-4, 4] (erf(±4) is ±1 to float precision), the form
    /// Eigen and onnxruntime use: no call per element, so loops vectorize (GELU-heavy models
    /// spent 8% of a run in libm's erff). Largest error 4.1e-7 (7 units in the last place near
    /// ±1, where libm's is 5e-8), checked against double-precision erf by a test.
    @inline(__always)
    static func erf(_ v: Float) -> Float {
        let x = Swift.min(Swift.max(v, -4), 4)
        let x2 = x * x
        var p: Float = -2.72614225801306e-10
        p = p * x2 + 2.77068142495902e-08
        p = p * x2 - 2.10102402082508e-06
        p = p * x2 - 5.69250639462346e-05
        p = p * x2 - 7.34990630326855e-04
        p = p * x2 - 2.95459980854025e-03
        p = p * x2 - 1.60960333262415e-02
        var q: Float = -1.45660718464996e-05
        q = q * x2 - 2.13374055278905e-04
        q = q * x2 - 1.68282697438203e-03
        q = q * x2 - 7.37332916720468e-03
        q = q * x2 - 1.42647390514189e-02
        return x * p / q
    }
    static func tanh(_ x: Float) -> Float { Foundation.tanh(x) }
    static func sqrt(_ x: Float) -> Float { x.squareRoot() }
    static func pow(_ x: Float, _ y: Float) -> Float { Foundation.pow(x, y) }
    static func log(_ x: Float) -> Float { Foundation.log(x) }
}

extension Double: FloatKernelScalar {
    static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    static func erf(_ x: Double) -> Double { Foundation.erf(x) }
    static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
    static func sqrt(_ x: Double) -> Double { x.squareRoot() }
    static func pow(_ x: Double, _ y: Double) -> Double { Foundation.pow(x, y) }
    static func log(_ x: Double) -> Double { Foundation.log(x) }
}

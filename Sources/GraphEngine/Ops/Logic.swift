import ONNXModel
import TensorCore

// Comparisons (Greater, Less, GreaterOrEqual, LessOrEqual), logic on bools (And, Or, Xor, Not)
// and the float tests IsNaN and IsInf. Every output is bool.

extension OpRegistry {
    mutating func registerLogic() {
        register("Greater") { _ in Greater() }
        register("Less") { _ in Less() }
        register("GreaterOrEqual") { _ in GreaterOrEqual() }
        register("LessOrEqual") { _ in LessOrEqual() }
        register("And") { _ in And() }
        register("Or") { _ in Or() }
        register("Xor") { _ in Xor() }
        register("Not") { _ in Not() }
        register("IsNaN") { _ in IsNaN() }
        register("IsInf") { context in
            IsInf(
                negative: try context.attribute("detect_negative", default: 1) != 0,
                positive: try context.attribute("detect_positive", default: 1) != 0)
        }
        // Bool outputs are not rounded back, so float16 inputs are simply compared in float32 (exactly).
        widenForHalfPrecision(["Greater", "Less", "GreaterOrEqual", "LessOrEqual", "IsNaN", "IsInf"])
    }
}

/// An op with bool outputs: piecewise constant in its inputs, so no gradient flows back through
/// it (the reverse pass never sends one into a bool output; this says so should one arrive).
protocol BoolValuedOperator: DifferentiableOperator {}

extension BoolValuedOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }
    func backward(_ step: BackwardStep) throws -> [Tensor?] { step.wanted.map { _ in nil } }
}

/// A comparison of two numeric tensors of one type, broadcast (NaN compares false).
protocol Comparison: BoolValuedOperator {
    static var opType: String { get }
    static func holds<T: Comparable>(_ a: T, _ b: T) -> Bool
}

private struct Compared<Op: Comparison, T: ArithmeticScalar>: BinaryElementFunction {
    func callAsFunction(_ a: T, _ b: T) -> Bool { Op.holds(a, b) }
}

extension Comparison {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        guard a.dtype == b.dtype else { throw OpError("\(Self.opType) inputs have different types: \(a.dtype) and \(b.dtype)") }
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor { try elementwise(a, b, Compared<Self, T>()) }
        if a.dtype == .float32 { return [try run(Float.self)] }
        return [try withArithmeticType(a.dtype, Self.opType) { try run($0) }]
    }
}

/// `Greater`: `a > b`.
struct Greater: Comparison {
    static let opType = "Greater"
    static func holds<T: Comparable>(_ a: T, _ b: T) -> Bool { a > b }
}

/// `Less`: `a < b`.
struct Less: Comparison {
    static let opType = "Less"
    static func holds<T: Comparable>(_ a: T, _ b: T) -> Bool { a < b }
}

/// `GreaterOrEqual`: `a ≥ b`.
struct GreaterOrEqual: Comparison {
    static let opType = "GreaterOrEqual"
    static func holds<T: Comparable>(_ a: T, _ b: T) -> Bool { a >= b }
}

/// `LessOrEqual`: `a ≤ b`.
struct LessOrEqual: Comparison {
    static let opType = "LessOrEqual"
    static func holds<T: Comparable>(_ a: T, _ b: T) -> Bool { a <= b }
}

/// A logical operation on two bool tensors, broadcast.
protocol LogicalOperation: BoolValuedOperator {
    static var opType: String { get }
    static func apply(_ a: Bool, _ b: Bool) -> Bool
}

private struct Logical<Op: LogicalOperation>: BinaryElementFunction {
    func callAsFunction(_ a: Bool, _ b: Bool) -> Bool { Op.apply(a, b) }
}

extension LogicalOperation {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        guard a.dtype == .bool, b.dtype == .bool else {
            throw OpError("\(Self.opType) needs bool inputs, got \(a.dtype) and \(b.dtype)")
        }
        return [try elementwise(a, b, Logical<Self>())]
    }
}

/// `And`.
struct And: LogicalOperation {
    static let opType = "And"
    static func apply(_ a: Bool, _ b: Bool) -> Bool { a && b }
}

/// `Or`.
struct Or: LogicalOperation {
    static let opType = "Or"
    static func apply(_ a: Bool, _ b: Bool) -> Bool { a || b }
}

/// `Xor`.
struct Xor: LogicalOperation {
    static let opType = "Xor"
    static func apply(_ a: Bool, _ b: Bool) -> Bool { a != b }
}

/// `Not`.
struct Not: BoolValuedOperator {
    private struct Negated: UnaryElementFunction {
        func callAsFunction(_ x: Bool) -> Bool { !x }
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        guard x.dtype == .bool else { throw OpError("Not needs a bool input, got \(x.dtype)") }
        return [try elementwise(x, Negated())]
    }
}

/// `IsNaN`.
struct IsNaN: BoolValuedOperator {
    private struct Test<T: FloatKernelScalar>: UnaryElementFunction {
        func callAsFunction(_ x: T) -> Bool { x.isNaN }
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        switch x.dtype {
        case .float32: return [try elementwise(x, Test<Float>())]
        case .float64: return [try elementwise(x, Test<Double>())]
        default: throw OpError("IsNaN needs float32, float16 or float64 input, got \(x.dtype)")
        }
    }
}

/// `IsInf`: which infinities it detects follows `detect_negative` and `detect_positive`.
struct IsInf: BoolValuedOperator {
    let negative, positive: Bool

    private struct Test<T: FloatKernelScalar>: UnaryElementFunction {
        let negative, positive: Bool
        func callAsFunction(_ x: T) -> Bool { (negative && x == -T.infinity) || (positive && x == T.infinity) }
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        switch x.dtype {
        case .float32: return [try elementwise(x, Test<Float>(negative: negative, positive: positive))]
        case .float64: return [try elementwise(x, Test<Double>(negative: negative, positive: positive))]
        default: throw OpError("IsInf needs float32, float16 or float64 input, got \(x.dtype)")
        }
    }
}

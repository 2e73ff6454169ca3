import ONNXModel
import TensorCore

// Element-wise math: Abs, Log, Reciprocal, Floor, Ceil, Round, Sign, Sin, Cos, and the variadic
// Min, Max, Mean and Sum (broadcasting since opset 8, equal shapes before).

extension OpRegistry {
    mutating func registerMathOps() {
        register("Abs") { _ in Abs() }
        register("Log") { _ in Log() }
        register("Reciprocal") { _ in Reciprocal() }
        register("Floor") { _ in Floor() }
        register("Ceil") { _ in Ceil() }
        register("Round") { _ in Round() }
        register("Sign") { _ in Sign() }
        register("Sin") { _ in Sin() }
        register("Cos") { _ in Cos() }
        register("Max") { context in Extremum(largest: true, broadcasts: context.opset >= 8) }
        register("Min") { context in Extremum(largest: false, broadcasts: context.opset >= 8) }
        register("Sum") { context in Sum(mean: false, broadcasts: context.opset >= 8) }
        register("Mean") { context in Sum(mean: true, broadcasts: context.opset >= 8) }
        widenForHalfPrecision([
            "Abs", "Log", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Max", "Min", "Sum", "Mean",
        ])
    }
}

/// `Log`: the natural logarithm.
struct Log: PointwiseOperator {
    static let opType = "Log"
    func value<T: ElementaryScalar>(_ x: T) -> T { T.log(x) }
    func derivative<T: ElementaryScalar>(_ x: T) -> T { 1 / x }
}

/// `Reciprocal`: `1 / x`.
struct Reciprocal: PointwiseOperator {
    static let opType = "Reciprocal"
    func value<T: ElementaryScalar>(_ x: T) -> T { 1 / x }
    func derivative<T: ElementaryScalar>(_ x: T) -> T { -1 / (x * x) }
}

/// `Sin`.
struct Sin: PointwiseOperator {
    static let opType = "Sin"
    func value<T: ElementaryScalar>(_ x: T) -> T { T.sin(x) }
    func derivative<T: ElementaryScalar>(_ x: T) -> T { T.cos(x) }
}

/// `Cos`.
struct Cos: PointwiseOperator {
    static let opType = "Cos"
    func value<T: ElementaryScalar>(_ x: T) -> T { T.cos(x) }
    func derivative<T: ElementaryScalar>(_ x: T) -> T { -T.sin(x) }
}

/// A step function: its derivative is zero wherever it exists, so no gradient flows back
/// (PyTorch returns zeros for floor, ceil, round and sign too).
protocol PiecewiseConstantOperator: PointwiseOperator {}

extension PiecewiseConstantOperator {
    func derivative<T: ElementaryScalar>(_ x: T) -> T { 0 }
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }
    /// No gradient, which the reverse pass counts as zeros.
    func backward(_ step: BackwardStep) throws -> [Tensor?] { [nil] }
}

/// `Floor`.
struct Floor: PiecewiseConstantOperator {
    static let opType = "Floor"
    func value<T: ElementaryScalar>(_ x: T) -> T { x.rounded(.down) }
}

/// `Ceil`.
struct Ceil: PiecewiseConstantOperator {
    static let opType = "Ceil"
    func value<T: ElementaryScalar>(_ x: T) -> T { x.rounded(.up) }
}

/// `Round`: halves go to the even neighbour, as the spec (and NumPy) says.
struct Round: PiecewiseConstantOperator {
    static let opType = "Round"
    func value<T: ElementaryScalar>(_ x: T) -> T { x.rounded(.toNearestOrEven) }
}

/// `Sign`: −1, 0 or 1; integers too. ±0 give 0 and NaN stays NaN, as NumPy's `sign`.
struct Sign: PiecewiseConstantOperator {
    static let opType = "Sign"
    func value<T: ElementaryScalar>(_ x: T) -> T { x > 0 ? 1 : x < 0 ? -1 : x == 0 ? 0 : x }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        if x.dtype.isFloatingPoint { return [try pointwise(x)] }
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            let (zero, one) = (T(int64Value: 0), T(int64Value: 1))
            return try mapElements(x, as: T.self) { v in v > zero ? one : v < zero ? T.negate(one) : zero }
        }
        return [try withArithmeticType(x.dtype, "Sign") { try run($0) }]
    }
}

/// `Abs`; integers too, wrapping as NumPy does (the most negative value stays itself).
struct Abs: PointwiseOperator {
    static let opType = "Abs"
    func value<T: ElementaryScalar>(_ x: T) -> T { Swift.abs(x) }
    /// The sign of x, so 0 at 0 (PyTorch's `sgn(x) · g`).
    func derivative<T: ElementaryScalar>(_ x: T) -> T { x > 0 ? 1 : x < 0 ? -1 : 0 }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        if x.dtype.isFloatingPoint { return [try pointwise(x)] }
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            let zero = T(int64Value: 0)
            return try mapElements(x, as: T.self) { v in v < zero ? T.negate(v) : v }
        }
        return [try withArithmeticType(x.dtype, "Abs") { try run($0) }]
    }
}

/// The inputs of a variadic op: at least one, none omitted, all of one type, and, before opset
/// 8 brought broadcasting to these ops, all of one shape.
private func variadicInputs(_ inputs: OpInputs, _ opType: String, broadcasts: Bool) throws -> [Tensor] {
    let tensors = try (0..<inputs.count).map { try inputs.required($0) }
    guard let first = tensors.first else { throw OpError("\(opType) needs at least one input") }
    if let other = tensors.first(where: { $0.dtype != first.dtype }) {
        throw OpError("\(opType) inputs have different types: \(first.dtype) and \(other.dtype)")
    }
    if !broadcasts, let other = tensors.first(where: { $0.shape != first.shape }) {
        throw OpError("\(opType) before opset 8 needs inputs of one shape, got \(first.shape) and \(other.shape)")
    }
    return tensors
}

/// `Max` and `Min` of one or more inputs, element by element; NaN wins, as in NumPy and PyTorch.
struct Extremum: DifferentiableOperator {
    let largest: Bool
    let broadcasts: Bool
    var opType: String { largest ? "Max" : "Min" }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let tensors = try variadicInputs(inputs, opType, broadcasts: broadcasts)
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            try tensors.dropFirst().reduce(tensors[0]) { result, next in
                try largest ? elementwise(result, next, Larger<T>()) : elementwise(result, next, Smaller<T>())
            }
        }
        if tensors[0].dtype == .float32 { return [try run(Float.self)] }
        return [try withArithmeticType(tensors[0].dtype, opType) { try run($0) }]
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { SavedValues(inputs: Set(wanted.indices), outputs: [0]) }

    /// The gradient goes to the input that was picked; where several inputs tie for it, they
    /// share it equally (PyTorch's `maximum`/`minimum` give each of two tied inputs half). Where
    /// the result is NaN, the NaN inputs share it.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let y = try step.output(0)
        let inputs = try step.inputShapes.indices.map { try step.input($0) }
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> [Tensor?] {
            // Per input, 1 where it holds the result (in the output's shape), and how many do.
            let picks = try inputs.map { try elementwise(y, $0, Picked<T>()) }
            let ties = try picks.dropFirst().reduce(picks[0]) { try elementwise($0, $1, Total<T>()) }
            let share = try elementwise(g, ties, Share<T>())
            return try picks.indices.map { try step.wants($0) ? elementwise(share, picks[$0], Product<T>()) : nil }
        }
        switch g.dtype {
        case .float32: return try run(Float.self)
        case .float64: return try run(Double.self)
        default: throw OpError("\(opType) gradients need float32, float16 or float64, got \(g.dtype)")
        }
    }
}

private struct Larger<T: ArithmeticScalar>: BinaryElementFunction {
    func callAsFunction(_ a: T, _ b: T) -> T { a > b || a != a ? a : b }
}

private struct Smaller<T: ArithmeticScalar>: BinaryElementFunction {
    func callAsFunction(_ a: T, _ b: T) -> T { a < b || a != a ? a : b }
}

/// 1 where an input `x` equals the result `y` (or both are NaN), else 0.
private struct Picked<T: FloatKernelScalar>: BinaryElementFunction {
    func callAsFunction(_ y: T, _ x: T) -> T { x == y || (x.isNaN && y.isNaN) ? 1 : 0 }
}

private struct Total<T: FloatKernelScalar>: BinaryElementFunction {
    func callAsFunction(_ a: T, _ b: T) -> T { a + b }
}

/// `g / count` (never a division by zero: the result is always one of the inputs).
private struct Share<T: FloatKernelScalar>: BinaryElementFunction {
    func callAsFunction(_ g: T, _ count: T) -> T { count > 0 ? g / count : 0 }
}

/// `Sum` and `Mean` of one or more float inputs, element by element, added left to right (as
/// the reference does); the mean divides the sum once by the count.
struct Sum: DifferentiableOperator {
    let mean: Bool
    let broadcasts: Bool
    var opType: String { mean ? "Mean" : "Sum" }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let tensors = try variadicInputs(inputs, opType, broadcasts: broadcasts)
        guard tensors[0].dtype == .float32 || tensors[0].dtype == .float64 else {
            throw OpError("\(opType) needs float32, float16 or float64 inputs, got \(tensors[0].dtype)")
        }
        let total = try tensors.dropFirst().reduce(tensors[0]) { sum, next in
            try sum.dtype == .float32 ? elementwise(sum, next, Total<Float>()) : elementwise(sum, next, Total<Double>())
        }
        guard mean, tensors.count > 1 else { return [total] }
        return [try scaled(total, by: tensors.count)]
    }

    /// `x / count`.
    private func scaled(_ x: Tensor, by count: Int) throws -> Tensor {
        switch x.dtype {
        case .float32: return try elementwise(x, DividedBy<Float>(divisor: Float(count)))
        case .float64: return try elementwise(x, DividedBy<Double>(divisor: Double(count)))
        default: throw OpError("\(opType) needs float32, float16 or float64, got \(x.dtype)")
        }
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }

    /// Every input receives the output's gradient (divided by the count for the mean), which the
    /// reverse pass sums over the axes the input was broadcast along.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let count = step.inputShapes.count
        let share = mean && count > 1 ? try scaled(g, by: count) : g
        return (0..<count).map { step.wants($0) ? share : nil }
    }
}

private struct DividedBy<T: FloatKernelScalar>: UnaryElementFunction {
    let divisor: T
    func callAsFunction(_ x: T) -> T { x / divisor }
}

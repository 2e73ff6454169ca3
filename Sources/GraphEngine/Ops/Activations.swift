import ONNXModel
import TensorCore

// Parameterized activations: HardSigmoid, HardSwish, LeakyRelu, PRelu, Elu, Selu, Celu, Softplus,
// Softsign, Mish, ThresholdedRelu, Shrink. Each is its scalar function and derivative; the
// element-wise loops, float32 included, come from ``PointwiseOperator``.

extension OpRegistry {
    mutating func registerActivations() {
        register("HardSigmoid") { context in
            HardSigmoid(alpha: try context.attribute("alpha", default: Float(0.2)), beta: try context.attribute("beta", default: Float(0.5)))
        }
        register("HardSwish") { _ in HardSwish() }
        register("LeakyRelu") { context in LeakyRelu(alpha: try context.attribute("alpha", default: Float(0.01))) }
        register("PRelu") { _ in PRelu() }
        register("Elu") { context in Elu(alpha: try context.attribute("alpha", default: Float(1))) }
        register("Selu") { context in
            // The spec's defaults (since opset 6) are these float32 values of 1.6732632423543772 and 1.0507009873554805.
            Selu(
                alpha: try context.attribute("alpha", default: Float(1.67326319217681884765625)),
                gamma: try context.attribute("gamma", default: Float(1.05070102214813232421875)))
        }
        register("Celu") { context in
            let alpha = try context.attribute("alpha", default: Float(1))
            guard alpha != 0 else { throw context.invalid("alpha", "must not be 0 (Celu divides by it)") }
            return Celu(alpha: alpha)
        }
        register("Softplus") { _ in Softplus() }
        register("Softsign") { _ in Softsign() }
        register("Mish") { _ in Mish() }
        register("ThresholdedRelu") { context in ThresholdedRelu(alpha: try context.attribute("alpha", default: Float(1))) }
        register("Shrink") { context in
            Shrink(lambd: try context.attribute("lambd", default: Float(0.5)), bias: try context.attribute("bias", default: Float(0)))
        }
        widenForHalfPrecision([
            "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish",
            "ThresholdedRelu", "Shrink",
        ])
    }
}

/// An element-wise float op defined by its value and derivative at one point, written once for
/// float32 and float64 (float16 computes in float32 through ``HalfPrecision``).
///
/// Conformers get `forward`, `backward` and `savedForBackward` (the input) from the extension
/// below. Each conformance specializes them for its own type, so the float32 loop calls the
/// concrete function directly and vectorizes where the function allows.
protocol PointwiseOperator: DifferentiableOperator {
    /// The ONNX op type, for errors.
    static var opType: String { get }
    /// `f(x)`.
    func value<T: ElementaryScalar>(_ x: T) -> T
    /// `f′(x)`.
    func derivative<T: ElementaryScalar>(_ x: T) -> T
}

/// ``PointwiseOperator/value(_:)`` as an element function.
struct PointwiseValue<Op: PointwiseOperator, T: ElementaryScalar>: UnaryElementFunction {
    let op: Op
    func callAsFunction(_ x: T) -> T { op.value(x) }
}

/// The chain rule `g · f′(x)` as an element function of `(g, x)`.
struct PointwiseGradient<Op: PointwiseOperator, T: ElementaryScalar>: BinaryElementFunction {
    let op: Op
    func callAsFunction(_ g: T, _ x: T) -> T { g * op.derivative(x) }
}

extension PointwiseOperator {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] { [try pointwise(inputs.required(0))] }

    /// `f` of every element of a float tensor.
    func pointwise(_ x: Tensor) throws -> Tensor {
        switch x.dtype {
        case .float32: return try elementwise(x, PointwiseValue<Self, Float>(op: self))
        case .float64: return try elementwise(x, PointwiseValue<Self, Double>(op: self))
        default: throw OpError("\(Self.opType) needs float32, float16 or float64 input, got \(x.dtype)")
        }
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(0) }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let x = try step.input(0)
        switch g.dtype {
        case .float32: return [try elementwise(g, x, PointwiseGradient<Self, Float>(op: self))]
        case .float64: return [try elementwise(g, x, PointwiseGradient<Self, Double>(op: self))]
        default: throw OpError("\(Self.opType) gradients need float32, float16 or float64, got \(g.dtype)")
        }
    }
}

/// The logistic function `1 / (1 + e⁻ˣ)`, without a branch (a data-dependent one mispredicts
/// on half of a typical tensor): where `e⁻ˣ` overflows the result is 0, within the smallest
/// normal float of the true value.
@inline(__always)
func logistic<T: FloatKernelScalar>(_ x: T) -> T { 1 / (1 + T.exp(-x)) }

/// The logistic function as an element function: `Sigmoid`'s float32 loop.
struct Logistic<T: FloatKernelScalar>: UnaryElementFunction {
    func callAsFunction(_ x: T) -> T { logistic(x) }
}

/// `g · y (1 − y)` for `y` the logistic of x: `Sigmoid`'s float32 gradient from its output.
struct LogisticGradient<T: FloatKernelScalar>: BinaryElementFunction {
    func callAsFunction(_ g: T, _ y: T) -> T { g * (y * (1 - y)) }
}

/// `log(1 + eˣ)` without overflow: `max(x, 0) + log1p(e^(−|x|))` (NaN stays NaN).
@inline(__always)
func softplus<T: ElementaryScalar>(_ x: T) -> T {
    (x > 0 ? x : 0) + T.log1p(T.exp(-Swift.abs(x)))
}

/// `HardSigmoid`: `max(0, min(1, αx + β))`; NaN stays NaN.
struct HardSigmoid: PointwiseOperator, FusibleActivation {
    static let opType = "HardSigmoid"
    let alpha, beta: Float
    var fusibleActivation: Activation? { .hardSigmoid(alpha: alpha, beta: beta) }

    @inline(__always)
    func value<T: FloatKernelScalar>(_ x: T) -> T {
        let v = x * T(alpha) + T(beta)
        return v < 0 ? 0 : v > 1 ? 1 : v
    }

    /// α strictly inside the linear part, 0 at and beyond the bends (PyTorch's rule for its (α, β) = (1/6, 1/2)).
    func derivative<T: ElementaryScalar>(_ x: T) -> T {
        let v = x * T(alpha) + T(beta)
        return v > 0 && v < 1 ? T(alpha) : 0
    }
}

/// `HardSwish`: `x · HardSigmoid(x)` with α = 1/6 (as float32) and β = 1/2, the spec's function body.
struct HardSwish: PointwiseOperator, FusibleActivation {
    static let opType = "HardSwish"
    var fusibleActivation: Activation? { .hardSwish }

    @inline(__always)
    func value<T: FloatKernelScalar>(_ x: T) -> T { x * HardSigmoid(alpha: 1 / 6, beta: 0.5).value(x) }

    /// 0 up to −3, `x/3 + 1/2` strictly between, 1 from 3 on: at the bends, the slope of the
    /// outer piece, as PyTorch's `hardswish_backward` gives it.
    func derivative<T: ElementaryScalar>(_ x: T) -> T {
        x <= -3 ? 0 : x < 3 ? x / 3 + T(0.5) : 1
    }
}

/// `LeakyRelu`: `x` where positive, else `αx`.
struct LeakyRelu: PointwiseOperator, FusibleActivation {
    static let opType = "LeakyRelu"
    let alpha: Float
    var fusibleActivation: Activation? { .leakyRelu(alpha: alpha) }

    @inline(__always)
    func value<T: FloatKernelScalar>(_ x: T) -> T { x > 0 ? x : x * T(alpha) }
    /// α at 0, as PyTorch's `leaky_relu_backward` (`x > 0 ? g : αg`).
    func derivative<T: ElementaryScalar>(_ x: T) -> T { x > 0 ? 1 : T(alpha) }
}

extension Activation {
    /// Applies the activation in place to `count` values, each computed exactly as the
    /// standalone op computes it, so a producer's fused epilogue gives the same bits.
    @inline(__always)
    func apply<T: FloatKernelScalar>(_ values: UnsafeMutablePointer<T>, count: Int) {
        switch self {
        case .relu: for i in 0..<count { values[i] = Swift.max(values[i], 0) }
        case .leakyRelu(let alpha):
            let f = LeakyRelu(alpha: alpha)
            for i in 0..<count { values[i] = f.value(values[i]) }
        case .hardSigmoid(let alpha, let beta):
            let f = HardSigmoid(alpha: alpha, beta: beta)
            for i in 0..<count { values[i] = f.value(values[i]) }
        case .hardSwish:
            let f = HardSwish()
            for i in 0..<count { values[i] = f.value(values[i]) }
        }
    }
}

/// `Elu`: `x` where positive, else `α(eˣ − 1)`.
struct Elu: PointwiseOperator {
    static let opType = "Elu"
    let alpha: Float

    func value<T: ElementaryScalar>(_ x: T) -> T { x > 0 ? x : T(alpha) * T.expm1(x) }
    func derivative<T: ElementaryScalar>(_ x: T) -> T { x > 0 ? 1 : T(alpha) * T.exp(x) }
}

/// `Selu`: `γx` where positive, else `γα(eˣ − 1)`.
struct Selu: PointwiseOperator {
    static let opType = "Selu"
    let alpha, gamma: Float

    func value<T: ElementaryScalar>(_ x: T) -> T { (x > 0 ? x : T(alpha) * T.expm1(x)) * T(gamma) }
    func derivative<T: ElementaryScalar>(_ x: T) -> T { x > 0 ? T(gamma) : T(gamma) * T(alpha) * T.exp(x) }
}

/// `Celu`: `max(0, x) + min(0, α(e^(x/α) − 1))`, which is `x` where positive and the second term elsewhere, for any α ≠ 0.
struct Celu: PointwiseOperator {
    static let opType = "Celu"
    let alpha: Float

    func value<T: ElementaryScalar>(_ x: T) -> T { x > 0 ? x : T(alpha) * T.expm1(x / T(alpha)) }
    func derivative<T: ElementaryScalar>(_ x: T) -> T { x > 0 ? 1 : T.exp(x / T(alpha)) }
}

/// `Softplus`: `log(1 + eˣ)`, whose derivative is the logistic function.
struct Softplus: PointwiseOperator {
    static let opType = "Softplus"
    func value<T: ElementaryScalar>(_ x: T) -> T { softplus(x) }
    func derivative<T: ElementaryScalar>(_ x: T) -> T { logistic(x) }
}

/// `Softsign`: `x / (1 + |x|)`.
struct Softsign: PointwiseOperator {
    static let opType = "Softsign"
    func value<T: ElementaryScalar>(_ x: T) -> T { x / (1 + Swift.abs(x)) }
    func derivative<T: ElementaryScalar>(_ x: T) -> T {
        let d = 1 + Swift.abs(x)
        return 1 / (d * d)
    }
}

/// `Mish`: `x · tanh(softplus(x))`, evaluated with one exponential: for `e = eˣ` and
/// `n = e (e + 2)`, `tanh(log(1 + e)) = n / (n + 2)` (no cancellation anywhere). Past x = 20 that
/// ratio is 1 in float64 too, so `e` is capped there and `n` never overflows.
struct Mish: PointwiseOperator {
    static let opType = "Mish"

    @inline(__always)
    private func terms<T: ElementaryScalar>(_ x: T) -> (e: T, n: T) {
        let e = T.exp(Swift.min(x, 20))
        return (e, e * (e + 2))
    }

    func value<T: ElementaryScalar>(_ x: T) -> T {
        let n = terms(x).n
        return x * (n / (n + 2))
    }

    /// `t + x σ(x) (1 − t²)` with `t = tanh(softplus(x))`, since softplus′ is the logistic σ;
    /// `1 − t² = 4 (n + 1) / (n + 2)²` and `σ = e / (1 + e)`.
    func derivative<T: ElementaryScalar>(_ x: T) -> T {
        let (e, n) = terms(x)
        let d = n + 2
        return n / d + x * (e / (1 + e)) * (4 * (n + 1) / (d * d))
    }
}

/// `ThresholdedRelu`: `x` above α, else 0.
struct ThresholdedRelu: PointwiseOperator {
    static let opType = "ThresholdedRelu"
    let alpha: Float

    func value<T: ElementaryScalar>(_ x: T) -> T { x > T(alpha) ? x : 0 }
    /// 0 at α itself, as PyTorch's `threshold` (which passes the gradient only where `x > α`).
    func derivative<T: ElementaryScalar>(_ x: T) -> T { x > T(alpha) ? 1 : 0 }
}

/// `Shrink`: `x + bias` below −λ, `x − bias` above λ, 0 between; integers too.
struct Shrink: PointwiseOperator {
    static let opType = "Shrink"
    let lambd, bias: Float

    func value<T: ElementaryScalar>(_ x: T) -> T {
        x < -T(lambd) ? x + T(bias) : x > T(lambd) ? x - T(bias) : 0
    }

    /// 1 outside [−λ, λ], 0 inside (and at ±λ, where the output jumps when bias ≠ 0).
    func derivative<T: ElementaryScalar>(_ x: T) -> T { x < -T(lambd) || x > T(lambd) ? 1 : 0 }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        if x.dtype.isFloatingPoint { return [try pointwise(x)] }
        // Integers compare and shift in double precision, then truncate back, as the reference's NumPy does.
        let (low, high, bias) = (-Double(lambd), Double(lambd), Double(bias))
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            try mapElements(x, as: T.self) { (v: T) -> T in
                let d = v.doubleValue
                return d < low ? T(doubleValue: d + bias) : d > high ? T(doubleValue: d - bias) : T(int64Value: 0)
            }
        }
        return [try withArithmeticType(x.dtype, "Shrink") { try run($0) }]
    }
}

/// `PRelu(X, slope)`: `x` where positive, else `slope · x`, with `slope` broadcast to X's shape.
struct PRelu: DifferentiableOperator {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let slope = try inputs.required(1)
        guard x.dtype == slope.dtype else { throw OpError("PRelu input and slope have different types: \(x.dtype) and \(slope.dtype)") }
        guard (try? Shape.broadcast(x.shape, slope.shape)) == x.shape else {
            throw OpError("PRelu slope of shape \(slope.shape) does not broadcast to the input's shape \(x.shape)")
        }
        switch x.dtype {
        case .float32: return [try elementwise(x, slope, PReluValue<Float>())]
        case .float64: return [try elementwise(x, slope, PReluValue<Double>())]
        case .int32: return [try elementwise(x, slope, PReluValue<Int32>())]
        case .int64: return [try elementwise(x, slope, PReluValue<Int64>())]
        default: throw OpError("PRelu does not support \(x.dtype) tensors")
        }
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { wanted.count > 0 && wanted[0] ? .inputs(0, 1) : .inputs(0) }

    /// `∂x = g` where `x > 0`, else `slope · g`; `∂slope = x · g` where `x ≤ 0`, else 0 (PyTorch's
    /// `prelu` rules), each in X's shape: the reverse pass sums `∂slope` down to the slope's.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let x = try step.input(0)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> [Tensor?] {
            let gx = try step.wants(0) ? elementwise(g, elementwise(x, step.input(1), PReluDerivative<T>()), Product<T>()) : nil
            let gs = try step.wants(1) ? elementwise(g, x, PReluSlopeGradient<T>()) : nil
            return [gx, gs]
        }
        switch g.dtype {
        case .float32: return try run(Float.self)
        case .float64: return try run(Double.self)
        default: throw OpError("PRelu gradients need float32, float16 or float64, got \(g.dtype)")
        }
    }
}

private struct PReluValue<T: ArithmeticScalar>: BinaryElementFunction {
    func callAsFunction(_ x: T, _ slope: T) -> T { x > T.zero ? x : T.multiply(x, slope) }
}

/// 1 where `x > 0`, else the slope.
private struct PReluDerivative<T: FloatKernelScalar>: BinaryElementFunction {
    func callAsFunction(_ x: T, _ slope: T) -> T { x > 0 ? 1 : slope }
}

private struct PReluSlopeGradient<T: FloatKernelScalar>: BinaryElementFunction {
    func callAsFunction(_ g: T, _ x: T) -> T { x > 0 ? 0 : g * x }
}

/// `a · b`.
struct Product<T: FloatKernelScalar>: BinaryElementFunction {
    func callAsFunction(_ a: T, _ b: T) -> T { a * b }
}

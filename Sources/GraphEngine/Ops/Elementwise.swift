import ONNXModel
import TensorCore

// Element-wise ops: arithmetic with broadcasting, activations, comparisons, Where, Cast, Clip,
// and the ops that pass data through unchanged at inference time (Identity, Dropout).

extension OpRegistry {
    mutating func registerElementwise() {
        register("Add") { _ in BinaryArithmetic(name: "Add", kind: .add) }
        register("Sub") { _ in BinaryArithmetic(name: "Sub", kind: .subtract) }
        register("Mul") { _ in BinaryArithmetic(name: "Mul", kind: .multiply) }
        register("Div") { _ in BinaryArithmetic(name: "Div", kind: .divide) }
        register("Mod") { context in
            BinaryArithmetic(name: "Mod", kind: .remainder(fmod: try context.attribute("fmod", default: 0) != 0))
        }
        register("Pow") { _ in Pow() }
        register("Equal") { _ in Equal() }
        register("Where") { _ in Where() }

        register("Neg") { _ in UnaryArithmetic(kind: .negate) }
        register("Relu") { _ in UnaryArithmetic(kind: .relu) }
        register("Sqrt") { _ in UnaryFloat(kind: .sqrt) }
        register("Exp") { _ in UnaryFloat(kind: .exp) }
        register("Erf") { _ in UnaryFloat(kind: .erf) }
        register("Sigmoid") { _ in UnaryFloat(kind: .sigmoid) }
        register("Tanh") { _ in UnaryFloat(kind: .tanh) }
        register("Gelu") { context in
            switch try context.attribute("approximate", default: "none") {
            case "none": return UnaryFloat(kind: .gelu)
            case "tanh": return UnaryFloat(kind: .geluTanh)
            case let other: throw context.invalid("approximate", "must be 'none' or 'tanh', got '\(other)'")
            }
        }
        register("Clip") { context in try Clip(context) }
        register("Cast") { context in try Cast(context) }
        register("Identity") { _ in PassThrough(withMask: false) }
        register("Dropout") { _ in PassThrough(withMask: true) }
    }
}

/// `Add`, `Sub`, `Mul`, `Div`, `Mod`: two inputs of one numeric type, broadcast.
struct BinaryArithmetic: Operator, ActivationFusing {
    enum Kind { case add, subtract, multiply, divide, remainder(fmod: Bool) }
    let name: String
    let kind: Kind
    /// Applied to each result element in the same pass (see ``Fusion``).
    var activation: Activation?

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        guard a.dtype == b.dtype else { throw OpError("\(name) inputs have different types: \(a.dtype) and \(b.dtype)") }
        if a.dtype == .float32 {
            switch kind {
            case .add where activation == .relu: return [try floatBinary(a, b, AddRelu.self)]
            case .add: return [try floatBinary(a, b, Plus.self)]
            case .subtract where activation == nil: return [try floatBinary(a, b, Minus.self)]
            case .multiply where activation == nil: return [try floatBinary(a, b, Times.self)]
            case .divide where activation == nil: return [try floatBinary(a, b, Over.self)]
            default: break
            }
        }
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            switch (kind, activation) {
            case (.add, .relu?):
                return try broadcastBinary(a, b, as: T.self) { x, y in
                    let v = T.add(x, y)
                    return rectified(v)
                }
            case (.add, _): return try broadcastBinary(a, b, as: T.self, T.add)  // ReLU is all Add takes (canFuse)
            case (.subtract, _): return try activated(broadcastBinary(a, b, as: T.self, T.subtract), as: T.self)
            case (.multiply, _): return try activated(broadcastBinary(a, b, as: T.self, T.multiply), as: T.self)
            case (.divide, _): return try activated(broadcastBinary(a, b, as: T.self, T.divide), as: T.self)
            case (.remainder(let fmod), _):
                return try activated(broadcastBinary(a, b, as: T.self) { T.remainder($0, $1, fmod: fmod) }, as: T.self)
            }
        }
        return [try withArithmeticType(a.dtype, name) { try run($0) }]
    }

    /// float32 arithmetic, the common case: the operation is a type parameter rather than a
    /// closure, so each specialization's inner loops are plain vector code.
    private func floatBinary<Op: FloatBinaryOperation>(_ a: Tensor, _ b: Tensor, _ op: Op.Type) throws -> Tensor {
        let loop = try BroadcastLoop([a.shape, b.shape])
        let strides = loop.innerStrides
        let (sa, sb, length) = (strides[0], strides[1], loop.length)
        let output = try Tensor(uninitialized: .float32, shape: loop.shape)
        withExtendedLifetime((a, b)) {
            // Raw pointers: indexing them has no overflow checks, so the loops vectorize.
            let (x, y) = (a.unsafeElements(as: Float.self).address(), b.unsafeElements(as: Float.self).address())
            let out = output.unsafeMutableElements(as: Float.self).address()
            loop.forEachRow { offsets, o in
                let (xs, ys, os) = (x + offsets[0], y + offsets[1], out + o)
                Parallel.forEach(length) { range in
                    switch (sa, sb) {
                    case (1, 1): for i in range { os[i] = Op.apply(xs[i], ys[i]) }
                    case (1, 0):
                        let scalar = ys[0]
                        for i in range { os[i] = Op.apply(xs[i], scalar) }
                    case (0, 1):
                        let scalar = xs[0]
                        for i in range { os[i] = Op.apply(scalar, ys[i]) }
                    default: for i in range { os[i] = Op.apply(xs[i &* sa], ys[i &* sb]) }
                    }
                }
            }
        }
        return output
    }

    private func activated<T: ArithmeticScalar>(_ result: Tensor, as type: T.Type) throws -> Tensor {
        guard activation == .relu else { return result }
        return try mapElements(result, as: T.self, rectified)
    }

    func fused(with activation: Activation) -> any Operator {
        var fused = self
        fused.activation = activation
        return fused
    }
}

/// One float32 operation of ``BinaryArithmetic``, as a type so loops specialize on it.
protocol FloatBinaryOperation {
    static func apply(_ x: Float, _ y: Float) -> Float
}

private enum Plus: FloatBinaryOperation { static func apply(_ x: Float, _ y: Float) -> Float { x + y } }
private enum AddRelu: FloatBinaryOperation { static func apply(_ x: Float, _ y: Float) -> Float { max(x + y, 0) } }
private enum Minus: FloatBinaryOperation { static func apply(_ x: Float, _ y: Float) -> Float { x - y } }
private enum Times: FloatBinaryOperation { static func apply(_ x: Float, _ y: Float) -> Float { x * y } }
private enum Over: FloatBinaryOperation { static func apply(_ x: Float, _ y: Float) -> Float { x / y } }

/// `Pow(X, Y)`: the exponent may have another numeric type; the result has X's type.
struct Pow: Operator {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        var y = try inputs.required(1)
        if x.dtype.isFloatingPoint {
            y = try y.converted(to: x.dtype)
            func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
                if y.count == 1, let e = try y.scalars(as: T.self).first, e == 2 {  // the square LayerNorm exports use
                    return try broadcastBinary(x, y, as: T.self) { a, _ in a * a }
                }
                return try broadcastBinary(x, y, as: T.self, T.pow)
            }
            return [try withFloatType(x.dtype, "Pow") { try run($0) }]
        }
        // Integer base: compute in double precision, as onnxruntime does, then convert back.
        let result = try broadcastBinary(x.converted(to: .float64), y.converted(to: .float64), as: Double.self, Double.pow)
        return [try result.converted(to: x.dtype)]
    }
}

/// `Equal`: element-wise equality of two broadcast inputs of one type, as bools.
struct Equal: Operator {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        guard a.dtype == b.dtype else { throw OpError("Equal inputs have different types: \(a.dtype) and \(b.dtype)") }
        func run<T: ConvertibleScalar & Equatable>(_ type: T.Type) throws -> Tensor {
            try broadcastBinary(a, b, as: T.self) { $0 == $1 }
        }
        switch a.dtype {
        case .bool: return [try run(Bool.self)]
        case .float16: return [try run(Half.self)]
        default: return [try withArithmeticType(a.dtype, "Equal") { try run($0) }]
        }
    }
}

/// `Where(condition, X, Y)`: picks from X where the condition holds, else from Y, all broadcast.
struct Where: Operator {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let condition = try inputs.required(0)
        let x = try inputs.required(1)
        let y = try inputs.required(2)
        guard condition.dtype == .bool else { throw OpError("Where condition must be bool, got \(condition.dtype)") }
        guard x.dtype == y.dtype else { throw OpError("Where X and Y have different types: \(x.dtype) and \(y.dtype)") }
        let loop = try BroadcastLoop([condition.shape, x.shape, y.shape])
        let strides = loop.innerStrides
        let output = try Tensor(zeros: x.dtype, shape: loop.shape)
        func run<T>(_ type: T.Type) {
            let c = condition.unsafeElements(as: Bool.self)
            let (a, b) = (x.unsafeElements(bitsAs: T.self), y.unsafeElements(bitsAs: T.self))
            let out = output.unsafeMutableElements(bitsAs: T.self)
            loop.forEachRow { offsets, o in
                for i in 0..<loop.length {
                    let pick = c[offsets[0] + i * strides[0]]
                    out[o + i] = pick ? a[offsets[1] + i * strides[1]] : b[offsets[2] + i * strides[2]]
                }
            }
        }
        withExtendedLifetime((condition, x, y)) { moving(x.dtype, run(UInt8.self), run(UInt16.self), run(UInt32.self), run(UInt64.self)) }
        return [output]
    }
}

/// ReLU of one value. NaN stays NaN, as in PyTorch and onnxruntime and as the fused kernels'
/// `max(v, 0)` gives it (`NaN == NaN` is false; for integers the test always holds).
@inline(__always)
func rectified<T: ArithmeticScalar>(_ value: T) -> T {
    value > T(int64Value: 0) || value != value ? value : T(int64Value: 0)
}

/// Applies `f` to every element of a tensor of type `T`, split over the kernel threads.
@inline(__always)
func mapElements<T: TensorScalar, R: TensorScalar>(_ x: Tensor, as type: T.Type, _ f: (T) -> R) throws -> Tensor {
    try x.withUnsafeBuffer(as: T.self) { input in
        try Tensor.build(R.self, shape: x.shape, writesAll: true) { out in
            Parallel.forEach(input.count) { range in
                for i in range { out[i] = f(input[i]) }
            }
        }
    }
}

/// `Neg` and `Relu`: unary ops defined for every numeric type.
struct UnaryArithmetic: Operator {
    enum Kind { case negate, relu }
    let kind: Kind

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            switch kind {
            case .negate: try mapElements(x, as: T.self, T.negate)
            case .relu:
                try mapElements(x, as: T.self, rectified)
            }
        }
        return [try withArithmeticType(x.dtype, kind == .negate ? "Neg" : "Relu") { try run($0) }]
    }
}

/// Floating-point activations and functions.
struct UnaryFloat: Operator {
    enum Kind: String { case sqrt, exp, erf, sigmoid, tanh, gelu, geluTanh }
    let kind: Kind

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        // float32 erf and GELU: on the kernel table's vector kernels where it has them; else with the
        // arithmetic written out on `Float`, so the loop inlines the rational erf and vectorizes
        // (a generic `T.erf` is one witness call per element).
        if x.dtype == .float32, kind == .erf || kind == .gelu, let vector = Kernels.current.vector {
            return [
                try x.withUnsafeBuffer(as: Float.self) { input in
                    try Tensor.build(Float.self, shape: x.shape, writesAll: true) { out in
                        guard let from = input.baseAddress, let to = out.baseAddress else { return }
                        kind == .erf
                            ? vector.erf(from, into: to, count: input.count)
                            : vector.gelu(from, into: to, count: input.count)
                    }
                }
            ]
        }
        if x.dtype == .float32, kind == .erf {
            return [try mapElements(x, as: Float.self) { Float.erf($0) }]
        }
        if x.dtype == .float32, kind == .sigmoid { return [try elementwise(x, Logistic<Float>())] }
        if x.dtype == .float32, kind == .gelu {
            return [try mapElements(x, as: Float.self) { v in v * (1 + Float.erf(v * 0.70710678118654752440)) / 2 }]
        }
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            switch kind {
            case .sqrt: return try mapElements(x, as: T.self, T.sqrt)
            case .exp: return try mapElements(x, as: T.self, T.exp)
            case .erf: return try mapElements(x, as: T.self, T.erf)
            case .tanh: return try mapElements(x, as: T.self, T.tanh)
            case .sigmoid: return try mapElements(x, as: T.self, logistic)
            case .gelu:
                let invSqrt2 = T(0.70710678118654752440)
                return try mapElements(x, as: T.self) { v in v * (1 + T.erf(v * invSqrt2)) / 2 }
            case .geluTanh:
                let c = T(0.79788456080286535588)  // sqrt(2 / pi)
                return try mapElements(x, as: T.self) { v in v * (1 + T.tanh(c * (v + T(0.044715) * v * v * v))) / 2 }
            }
        }
        return [try withFloatType(x.dtype, kind.rawValue) { try run($0) }]
    }
}

/// `Clip`: bounds from attributes before opset 11, from optional scalar inputs since.
struct Clip: Operator {
    let attributeBounds: (min: Float, max: Float)?

    init(_ context: OpContext) throws {
        attributeBounds =
            context.opset < 11
            ? (try context.attribute("min", default: -Float.greatestFiniteMagnitude),
                try context.attribute("max", default: Float.greatestFiniteMagnitude)) : nil
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        func bound<T: ArithmeticScalar>(_ index: Int, _ type: T.Type) throws -> T? {
            guard let tensor = inputs[index] else { return nil }
            guard tensor.count == 1 else { throw OpError("Clip bound input \(index) must be a scalar, got shape \(tensor.shape)") }
            return try tensor.converted(to: x.dtype).scalars(as: T.self).first
        }
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            let low: T?
            let high: T?
            if let attributeBounds {
                (low, high) = (T(doubleValue: Double(attributeBounds.min)), T(doubleValue: Double(attributeBounds.max)))
            } else {
                (low, high) = (try bound(1, T.self), try bound(2, T.self))
            }
            return try mapElements(x, as: T.self) { v in
                var result = v
                if let low, result < low { result = low }
                if let high, result > high { result = high }  // min > max gives max, as the spec says
                return result
            }
        }
        return [try withArithmeticType(x.dtype, "Clip") { try run($0) }]
    }
}

/// `Cast`: converts to the element type named by `to`.
struct Cast: Operator {
    let target: DType

    init(_ context: OpContext) throws {
        let code: Int = try context.node.requiredAttribute("to")
        guard let target = ONNXDataType.dtype(code: code) else {
            throw context.invalid("to", "casting to \(ONNXDataType.name(code: code)) is not supported")
        }
        self.target = target
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] { [try inputs.required(0).converted(to: target)] }
}

// MARK: - Backward

extension BinaryArithmetic: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues {
        switch kind {
        case .add, .subtract: .nothing
        case .multiply: .bilinear(wanted: wanted)
        case .divide, .remainder: .inputs(0, 1)
        }
    }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        /// `lhs ∘ rhs` by the forward kernels (specialized for float32, where the generic loop
        /// below is one witness call per element).
        func product(_ kind: Kind, _ lhs: Tensor, _ rhs: Tensor) throws -> Tensor? {
            try BinaryArithmetic(name: name, kind: kind).forward(OpInputs([lhs, rhs]))[0]
        }
        if g.dtype == .float32 {
            switch kind {
            case .multiply:
                return [
                    step.wants(0) ? try product(.multiply, g, step.input(1)) : nil,
                    step.wants(1) ? try product(.multiply, g, step.input(0)) : nil,
                ]
            case .divide where !step.wants(1):
                return [try product(.divide, g, step.input(1)), nil]
            default: break
            }
        }
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> [Tensor?] {
            switch kind {
            case .add:
                return [step.wants(0) ? g : nil, step.wants(1) ? g : nil]
            case .subtract:
                return [step.wants(0) ? g : nil, step.wants(1) ? try mapElements(g, as: T.self, T.negate) : nil]
            case .multiply:
                return [
                    step.wants(0) ? try broadcastBinary(g, step.input(1), as: T.self, T.multiply) : nil,
                    step.wants(1) ? try broadcastBinary(g, step.input(0), as: T.self, T.multiply) : nil,
                ]
            case .divide:
                let (a, b) = (try step.input(0), try step.input(1))
                let gb = try step.wants(1) ? broadcastBinary(g, broadcastBinary(a, b, as: T.self) { -$0 / ($1 * $1) }, as: T.self, T.multiply) : nil
                return [step.wants(0) ? try broadcastBinary(g, b, as: T.self, T.divide) : nil, gb]
            case .remainder(let fmod):
                // a mod b = a - q b with q = trunc(a / b) (fmod) or floor(a / b): dq is zero almost everywhere.
                let (a, b) = (try step.input(0), try step.input(1))
                let quotient = try broadcastBinary(a, b, as: T.self) { x, y in
                    let q = x / y
                    return -(fmod ? q.rounded(.towardZero) : q.rounded(.down))
                }
                return [step.wants(0) ? g : nil, step.wants(1) ? try broadcastBinary(g, quotient, as: T.self, T.multiply) : nil]
            }
        }
        return try withFloatType(g.dtype, name) { try run($0) }
    }
}

extension Pow: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { SavedValues(inputs: [0, 1], outputs: [0]) }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let x = try step.input(0)
        let y = try step.input(1).converted(to: x.dtype)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> [Tensor?] {
            // d(x^y)/dx = y x^(y-1);  d(x^y)/dy = x^y ln x.
            let gx = try step.wants(0) ? broadcastBinary(g, broadcastBinary(x, y, as: T.self) { $1 * T.pow($0, $1 - 1) }, as: T.self, T.multiply) : nil
            let gy = try step.wants(1) ? broadcastBinary(g, broadcastBinary(step.output(0), x, as: T.self) { $0 * T.log($1) }, as: T.self, T.multiply) : nil
            return [gx, gy]
        }
        return try withFloatType(x.dtype, "Pow") { try run($0) }
    }
}

extension UnaryArithmetic: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { kind == .relu ? .outputs(0) : .nothing }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            switch kind {
            case .negate: return try mapElements(g, as: T.self, T.negate)
            case .relu:
                // Relu's output is positive exactly where its input is.
                return try broadcastBinary(g, step.output(0), as: T.self) { gradient, y in y > 0 ? gradient : 0 }
            }
        }
        return [try withFloatType(g.dtype, kind == .negate ? "Neg" : "Relu") { try run($0) }]
    }
}

extension UnaryFloat: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues {
        switch kind {
        case .sqrt, .exp, .sigmoid, .tanh: .outputs(0)
        case .erf, .gelu, .geluTanh: .inputs(0)
        }
    }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        if g.dtype == .float32, kind == .erf || kind == .gelu, let vector = Kernels.current.vector {
            let x = try step.input(0)
            if x.shape == g.shape, x.dtype == .float32 {
                return [
                    try x.withUnsafeBuffer(as: Float.self) { xs in
                        try g.withUnsafeBuffer(as: Float.self) { gs in
                            try Tensor.build(Float.self, shape: g.shape, writesAll: true) { out in
                                guard let x = xs.baseAddress, let g = gs.baseAddress, let o = out.baseAddress else { return }
                                kind == .erf
                                    ? vector.erfBackward(x, gradient: g, into: o, count: out.count)
                                    : vector.geluBackward(x, gradient: g, into: o, count: out.count)
                            }
                        }
                    }
                ]
            }
        }
        if g.dtype == .float32, kind == .sigmoid { return [try elementwise(g, step.output(0), LogisticGradient<Float>())] }
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            let twoOverRootPi = T(1.12837916709551257390)
            let derivative: Tensor
            switch kind {
            case .sqrt: derivative = try mapElements(step.output(0), as: T.self) { 1 / (2 * $0) }
            case .exp: derivative = try step.output(0)
            case .sigmoid: derivative = try mapElements(step.output(0), as: T.self) { $0 * (1 - $0) }
            case .tanh: derivative = try mapElements(step.output(0), as: T.self) { 1 - $0 * $0 }
            case .erf: derivative = try mapElements(step.input(0), as: T.self) { twoOverRootPi * T.exp(-$0 * $0) }
            case .gelu:
                // d/dx x Φ(x) = Φ(x) + x φ(x).
                let invSqrt2 = T(0.70710678118654752440)
                let invSqrt2Pi = T(0.39894228040143267794)
                derivative = try mapElements(step.input(0), as: T.self) { x in
                    (1 + T.erf(x * invSqrt2)) / 2 + x * invSqrt2Pi * T.exp(-x * x / 2)
                }
            case .geluTanh:
                let c = T(0.79788456080286535588)
                derivative = try mapElements(step.input(0), as: T.self) { x in
                    let inner = c * (x + T(0.044715) * x * x * x)
                    let t = T.tanh(inner)
                    return (1 + t) / 2 + x / 2 * (1 - t * t) * c * (1 + 3 * T(0.044715) * x * x)
                }
            }
            return try broadcastBinary(g, derivative, as: T.self, T.multiply)
        }
        return [try withFloatType(g.dtype, kind.rawValue) { try run($0) }]
    }
}

extension Clip: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(0, 1, 2) }

    /// The gradient passes strictly inside the bounds, as PyTorch's Hardtanh/ReLU6 (what exporters write Clip for) does.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let x = try step.input(0)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            let bounds: (T?, T?)
            if let attributeBounds {
                bounds = (T(attributeBounds.min), T(attributeBounds.max))
            } else {
                bounds = try (1...2).map { index -> T? in
                    try step.inputs[index].flatMap { try $0.converted(to: x.dtype).scalars(as: T.self).first }
                }.withTwo { ($0, $1) }
            }
            return try broadcastBinary(g, x, as: T.self) { (gradient: T, value: T) -> T in
                if let low = bounds.0, value <= low { return T.zero }
                if let high = bounds.1, value >= high { return T.zero }
                return gradient
            }
        }
        return [try withFloatType(g.dtype, "Clip") { try run($0) }]
    }
}

private extension Array {
    func withTwo<R>(_ body: (Element, Element) -> R) -> R { body(self[0], self[1]) }
}

extension Cast: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }

    /// Between floating-point types the gradient converts back; into or out of integers there is none.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        guard target.isFloatingPoint, let source = step.inputTypes.first ?? nil, source.isFloatingPoint else { return [nil] }
        return [try step.gradient().converted(to: source)]
    }
}

extension Where: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(0) }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let condition = try step.input(0)
        let zero = try Tensor(zeros: g.dtype, shape: [])
        return [
            nil,
            step.wants(1) ? try Where().forward(OpInputs([condition, g, zero]))[0] : nil,
            step.wants(2) ? try Where().forward(OpInputs([condition, zero, g]))[0] : nil,
        ]
    }
}

/// `Identity` and `Dropout` at inference: the data passes through (Dropout adds an all-true mask).
struct PassThrough: DifferentiableOperator {
    let withMask: Bool

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        guard withMask else { return [x] }
        // In training mode a ratio of 0 still keeps every element (the spec's reference does the same);
        // any other ratio drops random elements, which no exported inference graph should ask for.
        if let training = inputs[2], try training.converted(to: .bool).scalars(as: Bool.self).first == true {
            let ratio = try inputs[1].map { try $0.converted(to: .float64).scalars(as: Double.self).first ?? 0.5 } ?? 0.5
            guard ratio == 0 else {
                throw OpError("Dropout with training_mode = true drops random elements; export the model in eval mode")
            }
        }
        return [x, try Tensor.build(Bool.self, shape: x.shape) { $0.update(repeating: true) }]
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }
    func backward(_ step: BackwardStep) throws -> [Tensor?] { [try step.gradient()] }
}

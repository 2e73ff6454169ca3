import ONNXModel
import TensorCore

// Linear quantization: QuantizeLinear and DequantizeLinear (opsets 10, 13, 19, 21, 23-25),
// per tensor, per axis (13+) or in blocks along an axis (21+), int8 and uint8 (DequantizeLinear
// also reads int32). The wider types of later opsets (int16, uint16, int4, uint4, int2, uint2,
// float8, float4) are not element types of this engine; a node asking for one is an error.
//
// Backward: the straight-through estimator, so GradCAM runs through the Q/DQ pairs of a
// quantized model. DequantizeLinear passes `g · scale` to its integer input as a float32
// gradient; QuantizeLinear passes it on as `g / scale`, where `x` was not clipped by saturation,
// and 0 where it was. Through a pair with one scale the gradient with respect to `x` is the
// identity where `x` lies inside the quantized range and 0 outside: the gradient PyTorch's
// FakeQuantize (`fake_quantize_per_tensor_affine`, per channel too) trains quantization-aware
// models with. Saturated values get none because the output does not move when they do: the
// heatmap should not credit an input the quantized model cannot see change. quantize_static also
// removes ReLUs and leaves their clipping at 0 to a uint8 QuantizeLinear's saturation, so this is
// the ReLU's gradient there too. Zero points, and QuantizeLinear's scale, get no gradient (they are
// initializers in a QDQ model, and the quantized output does not change with them except in
// jumps); DequantizeLinear's scale gets its exact gradient, the output being linear in it.

extension OpRegistry {
    mutating func registerQuantization() {
        register("QuantizeLinear") { try QuantizeLinear($0) }
        register("DequantizeLinear") { try DequantizeLinear($0) }
    }
}

/// How a scale (and zero point) maps onto the elements of the tensor it quantizes: one value
/// for all, one per index along an axis, or one per block of indices along an axis.
struct QuantizationLayout {
    enum Mode { case perTensor, perAxis, blocked(size: Int) }

    let mode: Mode
    /// The quantized tensor viewed as `[outer, extent, inner]` around the axis.
    let outer, extent, inner: Int
    /// Blocks along the axis, `⌈extent / size⌉`, when blocked.
    let blocks: Int

    /// Checks `parameter` (a scale or zero point, named `name`) against `shape` and the attributes.
    init(_ shape: [Int], _ parameter: [Int], name: String, axis: Int, blockSize: Int, opset: Int) throws {
        if blockSize <= 0 && parameter.reduce(1, *) == 1 && parameter.count <= 1 {
            (mode, outer, extent, inner, blocks) = (.perTensor, 1, 1, 1, 1)
            return
        }
        guard !shape.isEmpty, let axis = try? Shape.normalize(axis: axis, rank: shape.count) else {
            throw OpError("axis \(axis) is out of range for input x of shape \(shape)")
        }
        (outer, extent, inner) = (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
        if blockSize > 0 {
            blocks = extent / blockSize + (extent % blockSize == 0 ? 0 : 1)
            var expected = shape
            expected[axis] = blocks
            guard parameter == expected else {
                throw OpError(
                    "blocked quantization (block_size \(blockSize) along axis \(axis)) needs \(name) of shape \(expected) (x's shape with dimension \(axis) = ⌈\(extent)/\(blockSize)⌉), got \(parameter)")
            }
            mode = .blocked(size: blockSize)
            return
        }
        guard opset >= 13 else {
            throw OpError("\(name) must hold one value before opset 13 (per-axis quantization came with opset 13), got shape \(parameter)")
        }
        guard parameter == [extent] else {
            throw OpError("per-axis quantization along axis \(axis) needs a 1-D \(name) of \(extent) values (x's dimension \(axis)), got shape \(parameter)")
        }
        (mode, blocks) = (.perAxis, extent)
    }

    /// The index into the scale and zero point of element `index` of the quantized tensor.
    @inline(__always)
    func parameter(_ index: Int) -> Int {
        switch mode {
        case .perTensor: return 0
        case .perAxis: return (index / inner) % extent
        case .blocked(let size):
            let (o, a, i) = (index / (inner * extent), (index / inner) % extent, index % inner)
            return (o * blocks + a / size) * inner + i
        }
    }
}

/// Throws unless the zero point has the scale's shape; one value each may differ in rank (`[]`
/// and `[1]`), as quantize_static writes them and onnxruntime reads them.
private func checkZeroPoint(_ zeroPoint: Tensor?, matches scale: Tensor, names: (String, String)) throws {
    guard let zeroPoint, zeroPoint.shape != scale.shape else { return }
    guard zeroPoint.count == 1, scale.count == 1, zeroPoint.rank <= 1, scale.rank <= 1 else {
        throw OpError("\(names.0) has shape \(zeroPoint.shape); it must have \(names.1)'s shape \(scale.shape)")
    }
}

/// The attributes both ops read: the axis and block size that lay the scale over the tensor, and
/// the opset (per-axis scales came with 13).
struct QuantizationAxis {
    let axis: Int
    let blockSize: Int
    let opset: Int

    init(_ context: OpContext) throws {
        axis = try context.attribute("axis", default: 1)
        blockSize = try context.attribute("block_size", default: 0)
        if blockSize < 0 { throw context.invalid("block_size", "must not be negative, got \(blockSize)") }
        opset = context.opset
    }

    /// The layout of `scale` (named `name`) over a tensor of `shape`.
    func layout(_ shape: [Int], _ scale: Tensor, name: String) throws -> QuantizationLayout {
        try QuantizationLayout(shape, scale.shape, name: name, axis: axis, blockSize: blockSize, opset: opset)
    }
}

/// A type attribute (`output_dtype`, `precision`): nil when 0 (unset), else one of `allowed`,
/// described as `expected` in the error.
private func typeAttribute(_ context: OpContext, _ name: String, allowed: [DType], expected: String) throws -> DType? {
    let code = try context.attribute(name, default: 0)
    guard code != 0 else { return nil }
    guard let type = ONNXDataType.dtype(code: code), allowed.contains(type) else {
        throw context.invalid(name, "\(ONNXDataType.name(code: code)) is not supported: \(expected)")
    }
    return type
}

/// The scales as float32 and the zero points as int64 (zeros where there is no zero point).
private func parameters(_ scale: Tensor, _ zeroPoint: Tensor?) throws -> (scales: [Float], zeros: [Int64]) {
    let scales = try scale.converted(to: .float32).scalars(as: Float.self)
    let zeros = try zeroPoint?.converted(to: .int64).scalars(as: Int64.self) ?? [Int64](repeating: 0, count: scales.count)
    return (scales, zeros)
}

/// The range of an integer quantized type.
private func quantizedRange(_ dtype: DType) -> ClosedRange<Int64>? {
    switch dtype {
    case .uint8: 0...255
    case .int8: -128...127
    case .int32: Int64(Int32.min)...Int64(Int32.max)
    default: nil
    }
}

/// `QuantizeLinear`: `y = saturate(round(x / y_scale) + y_zero_point)`, rounding half to even.
///
/// The quotient is computed in the division type the spec names: `precision` (opset 23+) when
/// set, else the type of `y_scale` (float32, or float16 as NumPy's half division rounds it).
/// `saturate` concerns float8 outputs only; int8 and uint8 always saturate, as the spec says.
/// NaN quantizes to the zero point.
struct QuantizeLinear: Operator {
    let attributes: QuantizationAxis
    let outputType: DType?
    /// `nil`: the scale's type.
    let precision: DType?

    init(_ context: OpContext) throws {
        attributes = try QuantizationAxis(context)
        outputType = try typeAttribute(
            context, "output_dtype", allowed: [.uint8, .int8], expected: "this engine quantizes to INT8 (3) or UINT8 (2)")
        precision = try typeAttribute(context, "precision", allowed: [.float32, .float16], expected: "FLOAT (1) or FLOAT16 (10)")
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let scale = try inputs.required(1)
        let zeroPoint = inputs[2]
        guard [.float32, .float16, .int32].contains(x.dtype) else {
            throw OpError("input x must be float32, float16 or int32, got \(x.dtype)")
        }
        guard scale.dtype == .float32 || scale.dtype == .float16 else {
            throw OpError("input y_scale must be float32 or float16, got \(scale.dtype)")
        }
        let type = try resultType(zeroPoint)
        let layout = try attributes.layout(x.shape, scale, name: "y_scale")
        try checkZeroPoint(zeroPoint, matches: scale, names: ("y_zero_point", "y_scale"))
        let (scales, zeros) = try parameters(scale, zeroPoint)
        guard let range = quantizedRange(type) else { throw OpError("cannot quantize to \(type)") }
        let half = (precision ?? scale.dtype) == .float16
        let values = try x.converted(to: .float32)
        func run<Q: ConvertibleInteger>(_ output: Q.Type) throws -> Tensor {
            try values.withUnsafeBuffer(as: Float.self) { xs in
                try Tensor.build(Q.self, shape: x.shape, writesAll: true) { out in
                    for i in 0..<xs.count {
                        let p = layout.parameter(i)
                        let rounded = Self.rounded(xs[i], scales[p], half: half)
                        out[i] = Q(int64Value: Swift.min(Swift.max(rounded + zeros[p], range.lowerBound), range.upperBound))
                    }
                }
            }
        }
        return [type == .int8 ? try run(Int8.self) : try run(UInt8.self)]
    }

    /// `round(x / scale)` half to even, the quotient in float32 (or rounded to float16 first,
    /// both operands too, when the division type is float16), clamped into Int64's range.
    @inline(__always)
    static func rounded(_ x: Float, _ scale: Float, half: Bool) -> Int64 {
        var quotient = half ? Half(Half(x).floatValue / Half(scale).floatValue).floatValue : x / scale
        if quotient.isNaN { quotient = 0 }
        quotient = quotient.rounded(.toNearestOrEven)
        return Int64(Swift.min(Swift.max(Double(quotient), -9e18), 9e18))
    }

    /// The output type: the zero point's, which `output_dtype` must agree with, else uint8.
    private func resultType(_ zeroPoint: Tensor?) throws -> DType {
        guard let zeroPoint else { return outputType ?? .uint8 }
        guard zeroPoint.dtype == .uint8 || zeroPoint.dtype == .int8 else {
            throw OpError("y_zero_point is \(zeroPoint.dtype); this engine quantizes to int8 or uint8")
        }
        if let outputType, outputType != zeroPoint.dtype {
            throw OpError("output_dtype is \(outputType) but y_zero_point is \(zeroPoint.dtype); they must agree")
        }
        return zeroPoint.dtype
    }
}

/// `DequantizeLinear`: `y = (x − x_zero_point) · x_scale`, in float32, rounded once to float16
/// when the scale (or `output_dtype`, opset 23+) is float16.
struct DequantizeLinear: Operator {
    let attributes: QuantizationAxis
    let outputType: DType?

    init(_ context: OpContext) throws {
        attributes = try QuantizationAxis(context)
        outputType = try typeAttribute(context, "output_dtype", allowed: [.float32, .float16], expected: "FLOAT (1) or FLOAT16 (10)")
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let scale = try inputs.required(1)
        let layout = try layout(x: x, scale: scale, zeroPoint: inputs[2])
        let (scales, zeros) = try parameters(scale, inputs[2])
        let values = try x.converted(to: .int64)
        let y = try values.withUnsafeBuffer(as: Int64.self) { xs in
            try Tensor.build(Float.self, shape: x.shape, writesAll: true) { out in
                for i in 0..<xs.count {
                    let p = layout.parameter(i)
                    out[i] = Float(xs[i] - zeros[p]) * scales[p]
                }
            }
        }
        return [try y.converted(to: outputType ?? scale.dtype)]
    }

    /// Checks the inputs' types and shapes; the layout of the scale over `x`.
    func layout(x: Tensor, scale: Tensor, zeroPoint: Tensor?) throws -> QuantizationLayout {
        guard quantizedRange(x.dtype) != nil else {
            throw OpError("input x must be int8, uint8 or int32, got \(x.dtype)")
        }
        guard scale.dtype == .float32 || scale.dtype == .float16 else {
            throw OpError("input x_scale must be float32 or float16, got \(scale.dtype)")
        }
        if let zeroPoint {
            guard zeroPoint.dtype == x.dtype else {
                throw OpError("x_zero_point is \(zeroPoint.dtype) but x is \(x.dtype); they must have one type")
            }
            try checkZeroPoint(zeroPoint, matches: scale, names: ("x_zero_point", "x_scale"))
        }
        return try attributes.layout(x.shape, scale, name: "x_scale")
    }
}

// MARK: - Backward (straight-through estimator)

extension DequantizeLinear: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues {
        wanted.count > 1 && wanted[1] ? .inputs(0, 1, 2) : .inputs(1)
    }

    /// The quantized input stands for the real number `(x − zero_point) · scale`.
    func passesGradient(toIntegerInput index: Int) -> Bool { index == 0 }

    /// `∂x = g · scale` as a float32 tensor shaped like the integer `x` (see the file's header);
    /// `∂scale = Σ g · (x − zero_point)` over the elements each scale value covers (the exact
    /// derivative: the output is linear in the scale), in the scale's type.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        guard step.wants(0) || step.wants(1), let g = step.outputGradients.first ?? nil else { return [nil, nil, nil] }
        let scale = try step.input(1)
        let layout = try attributes.layout(g.shape, scale, name: "x_scale")
        // The zero point is saved only when the scale's gradient (its one user) is wanted.
        let (scales, zeros) = try parameters(scale, step.inputs.count > 2 ? step.inputs[2] : nil)
        let gs = try g.converted(to: .float32).scalars(as: Float.self)
        let dx = try step.wants(0) ? Tensor.build(Float.self, shape: g.shape, writesAll: true) { out in
            for i in 0..<gs.count { out[i] = gs[i] * scales[layout.parameter(i)] }
        } : nil
        guard step.wants(1) else { return [dx, nil, nil] }
        let xs = try step.input(0).converted(to: .int64).scalars(as: Int64.self)
        var sums = [Double](repeating: 0, count: scales.count)
        for i in 0..<gs.count {
            let p = layout.parameter(i)
            sums[p] += Double(gs[i]) * Double(xs[i] - zeros[p])
        }
        return [dx, try Tensor(shape: scale.shape, scalars: sums).converted(to: scale.dtype), nil]
    }
}

extension QuantizeLinear: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(0, 1, 2) }

    /// `∂x = g / scale` where `round(x / scale) + zero_point` lies in the output's range, 0 where
    /// saturation clipped it (see the file's header); in `x`'s type.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        guard step.wants(0), let g = step.outputGradients.first ?? nil else { return [nil, nil, nil] }
        let x = try step.input(0)
        let scale = try step.input(1)
        let zeroPoint = step.inputs.count > 2 ? step.inputs[2] : nil
        let type = zeroPoint?.dtype ?? outputType ?? .uint8
        guard let range = quantizedRange(type) else { throw OpError("cannot quantize to \(type)") }
        let layout = try attributes.layout(x.shape, scale, name: "y_scale")
        let (scales, zeros) = try parameters(scale, zeroPoint)
        let half = (precision ?? scale.dtype) == .float16
        let gradient = try x.converted(to: .float32).withUnsafeBuffer(as: Float.self) { xs in
            try g.converted(to: .float32).withUnsafeBuffer(as: Float.self) { gs in
                try Tensor.build(Float.self, shape: x.shape, writesAll: true) { out in
                    for i in 0..<xs.count {
                        let p = layout.parameter(i)
                        let q = Self.rounded(xs[i], scales[p], half: half) + zeros[p]
                        out[i] = range.contains(q) ? gs[i] / scales[p] : 0
                    }
                }
            }
        }
        return [try gradient.converted(to: x.dtype), nil, nil]
    }
}

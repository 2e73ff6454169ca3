import ONNXModel
import TensorCore

/// Runs a float32 kernel on float16 tensors: inputs are widened, the op computes in float32, and
/// the outputs are rounded back to float16 when the first input was float16.
///
/// Rounding once at the end matches NumPy's half-precision arithmetic (which the ONNX reference
/// outputs come from) and is at least as accurate as onnxruntime's float16 CPU kernels.
struct HalfPrecision: Operator {
    let inner: any Operator

    func multiplyAdds(_ inputs: OpInputs) throws -> Int? { try inner.multiplyAdds(inputs) }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        guard inputs.tensors.contains(where: { $0?.dtype == .float16 }) else { return try inner.forward(inputs) }
        let widened = try inputs.tensors.map { try $0.map { $0.dtype == .float16 ? try $0.converted(to: .float32) : $0 } }
        let outputs = try inner.forward(OpInputs(widened))
        guard inputs[0]?.dtype == .float16 else { return outputs }
        return try outputs.map { try $0.map { $0.dtype == .float32 ? try $0.converted(to: .float16) : $0 } }
    }
}

extension OpRegistry {
    /// Ops whose outputs take their first input's type and compute in float32: they accept float16 too.
    static let widenedForHalfPrecision = [
        "Add", "Sub", "Mul", "Div", "Mod", "Pow", "Neg", "Relu", "Sqrt", "Exp", "Erf", "Sigmoid", "Tanh", "Gelu",
        "Clip", "Gemm", "MatMul", "Conv", "BatchNormalization", "LayerNormalization", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "Softmax", "Attention",
    ]

    /// Wraps the builders of `opTypes` so their ops accept float16 inputs.
    mutating func widenForHalfPrecision(_ opTypes: [String]) {
        for opType in opTypes {
            guard let builder = builders[opType] else { continue }
            register(opType) { context in HalfPrecision(inner: try builder(context)) }
        }
    }
}

extension HalfPrecision: ActivationFusing {
    /// The inner op fused, still widened (only asked when ``canFuse(_:)`` holds).
    func fused(with activation: Activation) -> any Operator {
        guard let fusing = inner as? ActivationFusing else { return self }
        return HalfPrecision(inner: fusing.fused(with: activation))
    }

    func canFuse(_ activation: Activation) -> Bool { (inner as? ActivationFusing)?.canFuse(activation) ?? false }
}

extension HalfPrecision: FusibleActivation {
    var fusibleActivation: Activation? { (inner as? FusibleActivation)?.fusibleActivation }
}

extension HalfPrecision: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues {
        (inner as? DifferentiableOperator)?.savedForBackward(wanted: wanted) ?? .nothing
    }

    /// The inner rule runs in float32 too; gradients of float16 inputs are rounded back.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        guard let rule = inner as? DifferentiableOperator else {
            throw OpError("has no gradient rule, so gradients cannot flow through it")
        }
        guard step.inputTypes.contains(.float16) else { return try rule.backward(step) }
        func widen(_ tensors: [Tensor?]) throws -> [Tensor?] {
            try tensors.map { try $0.map { $0.dtype == .float16 ? try $0.converted(to: .float32) : $0 } }
        }
        // Row statistics rounded to half precision would cost LayerNormalization's gradient its
        // precision: its rule recomputes them when they are missing.
        let outputs = inner is LayerNormalization ? Array(step.outputs.prefix(1)) : step.outputs
        let wide = BackwardStep(
            inputs: try widen(step.inputs), inputShapes: step.inputShapes,
            inputTypes: step.inputTypes.map { $0 == .float16 ? .float32 : $0 }, outputs: try widen(outputs),
            outputShapes: step.outputShapes, outputTypes: step.outputTypes.map { $0 == .float16 ? .float32 : $0 },
            outputGradients: try widen(step.outputGradients), wanted: step.wanted)
        return try zip(try rule.backward(wide), step.inputTypes).map { gradient, type in
            try gradient.map { type == .float16 ? try $0.converted(to: .float16) : $0 }
        }
    }
}

import ONNXModel
import TensorCore

/// Runs a float32 kernel on float16 tensors: inputs are widened, the op computes in float32, and
/// the outputs are rounded back to float16 when the first input was float16.
///
/// Rounding once at the end matches NumPy's half-precision arithmetic (which the ONNX reference
/// outputs come from) and is at least as accurate as onnxruntime's float16 CPU kernels.
struct HalfPrecision: Operator {
    let inner: any Operator

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

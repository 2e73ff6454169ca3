import ONNXModel
import TensorCore

/// One of the activation functions the recurrent ops (`RNN`, `GRU`, `LSTM`) apply to their gates,
/// with its derivative for backpropagation through time.
///
/// The spec's list, by lower-cased name: `Relu`, `Tanh`, `Sigmoid`, `Affine` (`αx + β`),
/// `LeakyRelu`, `ThresholdedRelu` (`x` above `α`, else 0), `ScaledTanh` (`α tanh(βx)`),
/// `HardSigmoid` (`min(max(αx + β, 0), 1)`), `Elu`, `Softsign` and `Softplus`.
struct RecurrentActivation: Sendable, Equatable {
    enum Function: String, Sendable, CaseIterable {
        case relu, tanh, sigmoid, affine, leakyrelu, thresholdedrelu, scaledtanh, hardsigmoid, elu, softsign, softplus

        /// Whether the function reads `activation_alpha` / `activation_beta`: only those that do
        /// consume an entry of those lists (how onnxruntime reads them, checked by a golden).
        var takesAlpha: Bool { [.affine, .leakyrelu, .thresholdedrelu, .scaledtanh, .hardsigmoid, .elu].contains(self) }
        var takesBeta: Bool { [.affine, .scaledtanh, .hardsigmoid].contains(self) }

        /// "The same defaults as the corresponding ONNX operators": LeakyRelu 0.01, ThresholdedRelu
        /// and Elu 1, HardSigmoid 0.2 and 0.5; the retired experimental Affine 1 and 0, ScaledTanh
        /// 1 and 1 (onnxruntime's contrib op). onnxruntime's RNN kernels use 0 and 0 for Affine
        /// and ScaledTanh instead, so models that rely on those defaults differ there.
        var defaults: (alpha: Double, beta: Double) {
            switch self {
            case .leakyrelu: (0.01, 0)
            case .hardsigmoid: (0.2, 0.5)
            case .thresholdedrelu, .elu, .affine: (1, 0)
            case .scaledtanh: (1, 1)
            default: (0, 0)
            }
        }
    }

    let function: Function
    let alpha: Double
    let beta: Double

    /// `f(x)`.
    @inline(__always)
    func value<T: FloatKernelScalar>(_ x: T) -> T {
        switch function {
        case .relu: return Swift.max(x, 0)
        case .tanh: return T.tanh(x)
        case .sigmoid: return logistic(x)
        case .affine: return T(alpha) * x + T(beta)
        case .leakyrelu: return x >= 0 ? x : T(alpha) * x
        case .thresholdedrelu: return x > T(alpha) ? x : 0
        case .scaledtanh: return T(alpha) * T.tanh(T(beta) * x)
        case .hardsigmoid: return Swift.min(Swift.max(T(alpha) * x + T(beta), 0), 1)
        case .elu: return x >= 0 ? x : T(alpha) * (T.exp(x) - 1)
        case .softsign: return x / (1 + Swift.abs(x))
        case .softplus: return x > 20 ? x : T.log(1 + T.exp(x))  // exp overflows past ~88; log1p(e^x) = x there
        }
    }

    /// `f′(x)`, with the one-sided value at a kink that PyTorch's autograd takes (0 for Relu at 0).
    @inline(__always)
    func derivative<T: FloatKernelScalar>(_ x: T) -> T {
        switch function {
        case .relu: return x > 0 ? 1 : 0
        case .tanh:
            let y = T.tanh(x)
            return 1 - y * y
        case .sigmoid:
            let y = logistic(x)
            return y * (1 - y)
        case .affine: return T(alpha)
        case .leakyrelu: return x > 0 ? 1 : T(alpha)
        case .thresholdedrelu: return x > T(alpha) ? 1 : 0
        case .scaledtanh:
            let y = T.tanh(T(beta) * x)
            return T(alpha) * T(beta) * (1 - y * y)
        case .hardsigmoid:
            let y = T(alpha) * x + T(beta)
            return y > 0 && y < 1 ? T(alpha) : 0
        case .elu: return x > 0 ? 1 : T(alpha) * T.exp(x)
        case .softsign:
            let d = 1 + Swift.abs(x)
            return 1 / (d * d)
        case .softplus: return logistic(x)
        }
    }

    @inline(__always)
    private func logistic<T: FloatKernelScalar>(_ x: T) -> T {
        // Two branches so that exp never overflows.
        if x >= 0 { return 1 / (1 + T.exp(-x)) }
        let e = T.exp(x)
        return e / (1 + e)
    }
}

extension RecurrentActivation {
    /// The node's `activations` with their `activation_alpha`/`activation_beta`, one group of
    /// `perDirection` functions for each direction, or `defaults` (repeated per direction) when
    /// the attribute is absent. Values left over in the alpha/beta lists are ignored, as
    /// onnxruntime ignores them.
    static func parse(
        _ context: OpContext, defaults: [Function], directions: Int
    ) throws -> [[RecurrentActivation]] {
        let perDirection = defaults.count
        let names = try context.attribute("activations", as: [String].self)
        let functions: [Function]
        if let names {
            guard names.count == perDirection * directions else {
                throw context.invalid(
                    "activations",
                    "needs \(perDirection) function\(perDirection == 1 ? "" : "s") per direction (\(perDirection * directions) in all), got \(names.count)")
            }
            functions = try names.map { name in
                guard let function = Function(rawValue: name.lowercased()) else {
                    let known = Function.allCases.map(\.rawValue).joined(separator: ", ")
                    throw context.invalid("activations", "'\(name)' is not one of the supported functions (\(known), any case)")
                }
                return function
            }
        } else {
            functions = Array((0..<directions).map { _ in defaults }.joined())
        }
        var alphas = try context.attribute("activation_alpha", as: [Float].self)?.map(Double.init) ?? []
        var betas = try context.attribute("activation_beta", as: [Float].self)?.map(Double.init) ?? []
        let parsed = functions.map { function -> RecurrentActivation in
            let (alpha, beta) = function.defaults
            return RecurrentActivation(
                function: function,
                alpha: function.takesAlpha && !alphas.isEmpty ? alphas.removeFirst() : alpha,
                beta: function.takesBeta && !betas.isEmpty ? betas.removeFirst() : beta)
        }
        return (0..<directions).map { Array(parsed[$0 * perDirection..<($0 + 1) * perDirection]) }
    }
}

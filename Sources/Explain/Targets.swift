import GraphEngine
import TensorCore

/// The scalar a CAM explains, as a function of the model's `[batch, classes]` output: pytorch-grad-cam's targets.
public enum GradientTarget: Sendable {
    /// `Σₙ y[n, cₙ]`: one class logit per sample (pytorch-grad-cam's `ClassifierOutputTarget`);
    /// `nil` picks each sample's highest-scoring class.
    case logit(classes: [Int]?)
    /// `Σₙ softmax(y[n])[cₙ]`: one class probability per sample (`ClassifierOutputSoftmaxTarget`).
    case probability(classes: [Int]?)
    /// Any function of the output; the closure returns its gradient `∂L/∂y`, shaped like `y`.
    case custom(@Sendable (Tensor) throws -> Tensor)

    /// `∂L/∂y` for the output `y`: the seed of the reverse pass.
    public func seed(for output: Tensor) throws -> Tensor {
        switch self {
        case .custom(let gradient):
            return try gradient(output)
        case .logit(let classes), .probability(let classes):
            guard output.rank == 2 else { throw ExplainError.notAClassifier(shape: output.shape) }
            let (batch, width) = (output.shape[0], output.shape[1])
            let logits = try output.converted(to: .float64).scalars(as: Double.self)
            let classes = classes ?? ClassProbabilities.argmax(logits, width: width)
            guard classes.count == batch else {
                throw ExplainError.invalidTarget("\(classes.count) target classes were given for a batch of \(batch)")
            }
            if let bad = classes.first(where: { $0 < 0 || $0 >= width }) {
                throw ExplainError.invalidTarget("class \(bad) is out of range: the output has \(width) classes")
            }
            var seed = [Double](repeating: 0, count: batch * width)
            for (n, c) in classes.enumerated() {
                guard case .probability = self else {
                    seed[n * width + c] = 1
                    continue
                }
                let p = ClassProbabilities.softmax(logits[n * width..<(n + 1) * width])
                for j in 0..<width { seed[n * width + j] = p[c] * ((j == c ? 1 : 0) - p[j]) }
            }
            return try Tensor(shape: output.shape, scalars: seed).converted(to: output.dtype)
        }
    }
}

extension Executor {
    /// Runs the graph forward, then differentiates `target` back to each `wrt` tensor.
    ///
    /// - Parameters:
    ///   - feeds: One tensor per graph input.
    ///   - target: The scalar to differentiate, as a function of `output`.
    ///   - output: The output the target reads; the first graph output by default.
    ///   - wrt: Tensors to differentiate with respect to: any intermediate, or a graph input.
    ///   - fetch: Further forward values to return.
    ///   - guided: Guided backpropagation: every Relu passes only positive gradients, and only where
    ///     its input was positive (Springenberg et al.; pytorch-grad-cam's `GuidedBackpropReLUModel`).
    public func gradients(
        _ feeds: [String: Tensor], of target: GradientTarget, output: String? = nil, wrt: [String], fetch: [String] = [],
        guided: Bool = false
    ) throws -> GradientResult {
        try gradients(
            feeds, seed: { try target.seed(for: $0) }, output: output, wrt: wrt, fetch: fetch,
            overrides: guided ? GuidedBackpropagation.overrides : [:])
    }
}

/// Guided backpropagation as a backward override: Relu's own rule passes the gradient where the
/// input was positive; guided backpropagation also drops the negative gradients.
enum GuidedBackpropagation {
    static let overrides: [String: BackwardOverride] = [
        "Relu": { _, standard in try standard().map { try $0?.positivePart() } },
    ]
}

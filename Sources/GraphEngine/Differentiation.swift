import ONNXModel
import TensorCore

/// An operator with a vector-Jacobian product: given the gradient of a scalar loss with respect
/// to its outputs, the gradient with respect to its inputs.
///
/// Rules return each input gradient in the shape the op broadcast that input to; the reverse
/// pass sums it back to the input's own shape, so no rule un-broadcasts by itself.
package protocol DifferentiableOperator: Operator {
    /// The forward values ``backward(_:)`` reads when the inputs marked in `wanted` need
    /// gradients; the reverse pass keeps only these alive (weights need no activations kept).
    func savedForBackward(wanted: [Bool]) -> SavedValues
    /// Gradients for the inputs that `step.wanted` marks; `nil` elsewhere or where the gradient is zero.
    func backward(_ step: BackwardStep) throws -> [Tensor?]
    /// Whether a gradient flows into integer input `index` all the same: a straight-through
    /// estimator (DequantizeLinear) treats its quantized input as the real number it stands for,
    /// and hands it a float32 gradient shaped like it. False by default.
    func passesGradient(toIntegerInput index: Int) -> Bool
}

extension DifferentiableOperator {
    package func passesGradient(toIntegerInput index: Int) -> Bool { false }
}

/// Which inputs and outputs of a node its backward rule reads.
package struct SavedValues: Sendable {
    package var inputs: Set<Int>
    package var outputs: Set<Int>

    package init(inputs: Set<Int> = [], outputs: Set<Int> = []) {
        self.inputs = inputs
        self.outputs = outputs
    }

    /// Nothing beyond shapes (which are always kept).
    package static let nothing = SavedValues()
    /// Every input.
    package static func inputs(_ indices: Int...) -> SavedValues { SavedValues(inputs: Set(indices)) }
    /// For ops linear in each of inputs 0 and 1 (Mul, MatMul, Gemm, Conv): each input's gradient
    /// reads only the other input, so an activation times a weight keeps just the weight.
    package static func bilinear(wanted: [Bool]) -> SavedValues {
        var inputs: Set<Int> = []
        if wanted.count > 1, wanted[1] { inputs.insert(0) }
        if wanted.count > 0, wanted[0] { inputs.insert(1) }
        return SavedValues(inputs: inputs)
    }

    /// Some outputs.
    package static func outputs(_ indices: Int...) -> SavedValues { SavedValues(outputs: Set(indices)) }
}

/// What a backward rule gets: the saved forward values, every input's and output's shape, the
/// incoming output gradients, and which input gradients are wanted.
package struct BackwardStep {
    /// Saved inputs (see ``SavedValues``); `nil` when not saved or omitted.
    package let inputs: [Tensor?]
    /// Shapes of all inputs; `nil` for omitted ones.
    package let inputShapes: [[Int]?]
    /// Element types of all inputs; `nil` for omitted ones.
    package let inputTypes: [DType?]
    /// Saved outputs; `nil` when not saved.
    package let outputs: [Tensor?]
    /// Shapes and types of all outputs the node produced.
    package let outputShapes: [[Int]?]
    let outputTypes: [DType?]
    /// The gradient arriving at each output; `nil` where none flows (zero).
    package let outputGradients: [Tensor?]
    /// Which input gradients the reverse pass needs.
    package let wanted: [Bool]
    /// Which inputs are constants (see ``OpInputs/isConstant(_:)``): the same tensor on every
    /// run, so a rule may keep what it derives from them.
    var constantInputs: [Bool] = []

    /// Whether input `index` is a constant (false when unknown).
    package func isConstant(_ index: Int) -> Bool { index < constantInputs.count && constantInputs[index] }

    /// Saved input `index`, which the rule declared in ``SavedValues``.
    package func input(_ index: Int) throws -> Tensor {
        guard index < inputs.count, let tensor = inputs[index] else {
            throw OpError("backward needs input \(index), which was not saved")
        }
        return tensor
    }

    /// Saved output `index`.
    package func output(_ index: Int) throws -> Tensor {
        guard index < outputs.count, let tensor = outputs[index] else {
            throw OpError("backward needs output \(index), which was not saved")
        }
        return tensor
    }

    /// The shape of input `index`.
    package func inputShape(_ index: Int) throws -> [Int] {
        guard index < inputShapes.count, let shape = inputShapes[index] else { throw OpError("input \(index) is missing") }
        return shape
    }

    /// The gradient at output `index`, zeros when none arrived.
    package func gradient(_ index: Int = 0) throws -> Tensor {
        if index < outputGradients.count, let gradient = outputGradients[index] { return gradient }
        guard index < outputShapes.count, let shape = outputShapes[index], let type = outputTypes[index] else {
            throw OpError("output \(index) has no shape")
        }
        return try Tensor(zeros: type, shape: shape)
    }

    /// Whether input `index`'s gradient is wanted.
    package func wants(_ index: Int) -> Bool { index < wanted.count && wanted[index] }
}

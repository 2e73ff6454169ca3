import ONNXModel
import TensorCore

/// `CumSum`: running sums along the axis given by the second input (one int32 or int64).
///
/// `exclusive` leaves each element out of its own sum (the first is 0); `reverse` sums from the
/// end. Sums accumulate in the element type, in order, as NumPy's `cumsum` does.
struct CumSum: Operator {
    let exclusive: Bool
    let reverse: Bool

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let axis = try Shape.normalize(axis: inputs.required(1).integers().only("axis"), rank: x.rank)
        let split = AxisSplit(x.shape, axis: axis)
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            try x.withUnsafeBuffer(as: T.self) { x in
                try Tensor.build(T.self, shape: [split.outer, split.extent, split.inner], writesAll: true) { y in
                    let inner = split.inner
                    for o in 0..<split.outer {
                        for step in 0..<split.extent {
                            let row = (o * split.extent + (reverse ? split.extent - 1 - step : step)) * inner
                            guard step > 0 else {
                                for j in 0..<inner { y[row + j] = exclusive ? .zero : x[row + j] }
                                continue
                            }
                            let previous = reverse ? row + inner : row - inner
                            let added = exclusive ? previous : row
                            for j in 0..<inner { y[row + j] = T.add(y[previous + j], x[added + j]) }
                        }
                    }
                }
            }
        }
        // float32 by name, so the loop specializes.
        let y = x.dtype == .float32 ? try run(Float.self) : try withArithmeticType(x.dtype, "CumSum") { try run($0) }
        return [try y.reshaped(x.shape)]
    }
}

extension CumSum: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1) }

    /// Each element's gradient sums the gradients of the outputs it entered: a cumulative sum
    /// of the gradient in the other direction, exclusive as the forward was.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let reversed = CumSum(exclusive: exclusive, reverse: !reverse)
        return [try reversed.forward(OpInputs([step.gradient(), step.input(1)]))[0], nil]
    }
}

import ONNXModel
import TensorCore

// Reductions over a set of axes: ReduceMean and ReduceSum, with axes as an attribute
// (ReduceMean before opset 18, ReduceSum before 13) or as an input after that.

extension OpRegistry {
    mutating func registerReductions() {
        register("ReduceMean") { context in try Reduce(context, mean: true, axesBecameInput: 18) }
        register("ReduceSum") { context in try Reduce(context, mean: false, axesBecameInput: 13) }
    }
}

/// `ReduceMean` / `ReduceSum`.
struct Reduce: Operator {
    let mean: Bool
    let keepDims: Bool
    let noopWithEmptyAxes: Bool
    let attributeAxes: [Int]?

    init(_ context: OpContext, mean: Bool, axesBecameInput: Int) throws {
        self.mean = mean
        keepDims = try context.attribute("keepdims", default: 1) != 0
        noopWithEmptyAxes = try context.attribute("noop_with_empty_axes", default: 0) != 0
        attributeAxes = context.opset < axesBecameInput ? try context.attribute("axes") : nil
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let axesList = try attributeAxes ?? inputs[1]?.integers() ?? []
        if axesList.isEmpty && noopWithEmptyAxes { return [x] }
        let axes = try Set(axesList.isEmpty ? Array(0..<x.rank) : axesList.map { try Shape.normalize(axis: $0, rank: x.rank) })
        let kept = x.shape.indices.map { axes.contains($0) ? 1 : x.shape[$0] }
        let reducedCount = axes.reduce(1) { $0 * x.shape[$1] }
        let loop = try BroadcastLoop([x.shape, kept])
        let strides = loop.innerStrides
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            var sums = [Double](repeating: 0, count: try Shape.elementCount(kept))
            try x.withUnsafeBuffer(as: T.self) { input in
                loop.forEachRow { offsets, _ in
                    for i in 0..<loop.length { sums[offsets[1] + i * strides[1]] += input[offsets[0] + i * strides[0]].doubleValue }
                }
            }
            let divisor = mean ? Double(max(reducedCount, 1)) : 1
            let shape = keepDims ? kept : x.shape.indices.filter { !axes.contains($0) }.map { x.shape[$0] }
            return try Tensor(shape: shape, scalars: sums.map { T(doubleValue: $0 / divisor) })
        }
        return [try withArithmeticType(x.dtype, mean ? "ReduceMean" : "ReduceSum") { try run($0) }]
    }
}

extension Reduce: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1) }

    /// Every input element receives its output's gradient (divided by the count for a mean).
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let shape = try step.inputShape(0)
        let axesList = try attributeAxes ?? step.inputs.dropFirst().first??.integers() ?? []
        if axesList.isEmpty && noopWithEmptyAxes { return [g] }
        let axes = try Set(axesList.isEmpty ? Array(0..<shape.count) : axesList.map { try Shape.normalize(axis: $0, rank: shape.count) })
        let kept = shape.indices.map { axes.contains($0) ? 1 : shape[$0] }
        let count = axes.reduce(1) { $0 * shape[$1] }
        let spread = try stridedCopy(g.reshaped(kept), shape: shape, strides: Shape.broadcastStrides(kept, to: shape))
        guard mean else { return [spread] }
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try mapElements(spread, as: T.self) { $0 / T(max(count, 1)) }
        }
        return [try withFloatType(g.dtype, "ReduceMean") { try run($0) }]
    }
}

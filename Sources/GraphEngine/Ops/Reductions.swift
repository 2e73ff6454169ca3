import Foundation
import ONNXModel
import TensorCore

// Reductions over a set of axes (ReduceSum, ReduceMean, ReduceSumSquare, ReduceL1, ReduceL2,
// ReduceLogSumExp, ReduceProd, ReduceMax, ReduceMin): one axes parser here, one layout and loop
// in Kernels/Reduction.swift. The single-axis reductions (ArgMax, ArgMin, TopK) are in
// Reductions+Selection.swift, CumSum in Reductions+Scan.swift.

extension OpRegistry {
    mutating func registerReductions() {
        // The axes moved from an attribute to the second input at opset 13 for ReduceSum, 18 for the rest.
        register("ReduceSum") { try Reduce($0, .sum, axesBecameInput: 13) }
        register("ReduceMean") { try Reduce($0, .mean, axesBecameInput: 18) }
        register("ReduceSumSquare") { try Reduce($0, .sumSquare, axesBecameInput: 18) }
        register("ReduceL1") { try Reduce($0, .l1, axesBecameInput: 18) }
        register("ReduceL2") { try Reduce($0, .l2, axesBecameInput: 18) }
        register("ReduceLogSumExp") { try Reduce($0, .logSumExp, axesBecameInput: 18) }
        register("ReduceProd") { try Reduce($0, .product, axesBecameInput: 18) }
        register("ReduceMax") { try Reduce($0, .maximum, axesBecameInput: 18) }
        register("ReduceMin") { try Reduce($0, .minimum, axesBecameInput: 18) }
        register("ArgMax") { try ArgExtremum($0, largest: true) }
        register("ArgMin") { try ArgExtremum($0, largest: false) }
        register("TopK") { try TopK($0) }
        register("CumSum") { context in
            CumSum(exclusive: try context.attribute("exclusive", default: 0) != 0, reverse: try context.attribute("reverse", default: 0) != 0)
        }
        widenForHalfPrecision([
            "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceProd", "ReduceMax", "ReduceMin", "ArgMax",
            "ArgMin", "TopK", "CumSum",
        ])
    }
}

/// A reduction node's `axes`, `keepdims` (default 1) and `noop_with_empty_axes` (default 0).
struct ReductionAxes: Sendable {
    let keepDims: Bool
    let noopWithEmptyAxes: Bool
    /// The `axes` attribute, at opsets before the axes became the second input.
    let attributeAxes: [Int]?

    init(_ context: OpContext, axesBecameInput: Int) throws {
        keepDims = try context.attribute("keepdims", default: 1) != 0
        noopWithEmptyAxes = try context.attribute("noop_with_empty_axes", default: 0) != 0
        attributeAxes = context.opset < axesBecameInput ? try context.attribute("axes") : nil
    }

    /// The layout of reducing an input of `shape`; `axesInput` is the node's second input.
    ///
    /// No axes means every axis, unless `noop_with_empty_axes` is set: then none, and each output
    /// element is its input element after the op's element-wise part (ReduceSumSquare squares,
    /// ReduceL1 takes |x|), as the spec asks.
    func layout(_ shape: [Int], axesInput: Tensor?) throws -> ReductionLayout {
        let listed = try attributeAxes ?? axesInput?.integers() ?? []
        var reduced = [Bool](repeating: listed.isEmpty && !noopWithEmptyAxes, count: shape.count)
        for axis in listed { reduced[try Shape.normalize(axis: axis, rank: shape.count)] = true }
        return try ReductionLayout(shape, reduced: reduced, keepDims: keepDims)
    }
}

/// `ReduceSum`, `ReduceMean`, `ReduceSumSquare`, `ReduceL1`, `ReduceL2`, `ReduceLogSumExp`,
/// `ReduceProd`, `ReduceMax`, `ReduceMin`.
///
/// An empty reduction gives the fold's identity: 0 for sums, 1 for the product, -inf (or the
/// type's minimum) for the maximum, +inf (or its maximum) for the minimum, -inf for
/// ReduceLogSumExp. On bool tensors (ReduceMax and ReduceMin since opset 20) false < true.
struct Reduce: Operator {
    enum Kind { case sum, mean, sumSquare, l1, l2, logSumExp, product, maximum, minimum }
    let kind: Kind
    let axes: ReductionAxes

    init(_ context: OpContext, _ kind: Kind, axesBecameInput: Int) throws {
        self.kind = kind
        axes = try ReductionAxes(context, axesBecameInput: axesBecameInput)
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let layout = try axes.layout(x.shape, axesInput: inputs[1])
        if x.dtype == .bool, kind == .maximum || kind == .minimum {
            return [try kind.reduce(x.converted(to: .uint8), layout).converted(to: .bool)]
        }
        return [try kind.reduce(x, layout)]
    }
}

extension Reduce.Kind {
    var name: String {
        switch self {
        case .sum: "ReduceSum"
        case .mean: "ReduceMean"
        case .sumSquare: "ReduceSumSquare"
        case .l1: "ReduceL1"
        case .l2: "ReduceL2"
        case .logSumExp: "ReduceLogSumExp"
        case .product: "ReduceProd"
        case .maximum: "ReduceMax"
        case .minimum: "ReduceMin"
        }
    }

    /// `x` reduced as `layout` says.
    func reduce(_ x: Tensor, _ layout: ReductionLayout) throws -> Tensor {
        // float32 by name, so the folds specialize into plain loops (opened from the existential
        // they would call through witness tables per element).
        if x.dtype == .float32 { return try reduce(x, layout, as: Float.self) }
        return try withReducibleType(x.dtype, name) { try reduce(x, layout, as: $0) }
    }

    private func reduce<T: ReducibleScalar>(_ x: Tensor, _ layout: ReductionLayout, as type: T.Type) throws -> Tensor {
        let values: [T]
        switch self {
        case .sum: values = try layout.fold(x, SumFold<T>.self).map { T(accumulated: $0) }
        case .mean:
            let count = Double(max(layout.reducedCount, 1))
            values = try layout.fold(x, SumFold<T>.self).map { T(doubleValue: $0.doubleValue / count) }
        case .sumSquare: values = try layout.fold(x, SumOfSquaresFold<T>.self).map { T(accumulated: $0) }
        case .l1: values = try layout.fold(x, SumOfMagnitudesFold<T>.self).map { T(accumulated: $0) }
        case .l2: values = try layout.fold(x, SumOfSquaresFold<T>.self).map { T(doubleValue: $0.doubleValue.squareRoot()) }
        case .logSumExp: values = try logSumExp(x, layout, as: T.self)
        case .product: values = try layout.fold(x, ProductFold<T>.self).map { T(accumulated: $0) }
        case .maximum: values = try layout.fold(x, MaximumFold<T>.self)
        case .minimum: values = try layout.fold(x, MinimumFold<T>.self)
        }
        return try Tensor(shape: layout.outputShape, scalars: values)
    }

    /// `m + log Σ exp(x - m)` with `m` the maximum, so no exponential overflows; an infinite
    /// (or empty, -inf) maximum shifts by 0 instead, which gives ±inf without NaN.
    private func logSumExp<T: ReducibleScalar>(_ x: Tensor, _ layout: ReductionLayout, as type: T.Type) throws -> [T] {
        let shifts = try layout.fold(x, MaximumFold<T>.self).map { m in m.doubleValue.isFinite ? m.doubleValue : 0 }
        var sums = [Double](repeating: 0, count: layout.outputCount)
        try x.withUnsafeBuffer(as: T.self) { input in
            sums.withUnsafeMutableBufferPointer { sums in
                layout.forEachRow { i, o, step, length in
                    for k in 0..<length { sums[o + k * step] += Foundation.exp(input[i + k].doubleValue - shifts[o + k * step]) }
                }
            }
        }
        return zip(sums, shifts).map { T(doubleValue: Foundation.log($0) + $1) }
    }
}

// MARK: - Backward

extension Reduce: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues {
        switch kind {
        case .sum, .mean: .inputs(1)
        case .sumSquare, .l1, .product: .inputs(0, 1)
        case .l2, .logSumExp, .maximum, .minimum: SavedValues(inputs: [0, 1], outputs: [0])
        }
    }

    /// Each input element's gradient from its output's gradient `g` (and value `y`):
    /// - sum: `g`; mean: `g / n`; sum of squares: `2x·g`; L1: `sign(x)·g`, 0 at x = 0 (PyTorch's `abs`);
    /// - L2: `x / y · g`, and 0 where `y` = 0 (an all-zero row), as `torch.linalg.vector_norm`;
    /// - log-sum-exp: `exp(x - y)·g`, the softmax;
    /// - product: the product of the other elements times `g`, exact with zeros among them;
    /// - max/min: `g` split evenly between the elements equal to `y` (PyTorch's `amax`/`amin`;
    ///   where `y` is NaN, no element equals it and every gradient is NaN, as there).
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let shape = try step.inputShape(0)
        let layout = try axes.layout(shape, axesInput: step.inputs.dropFirst().first ?? nil)
        switch g.dtype {
        case .float32: return [try gradient(step, g, layout, shape, as: Float.self)]  // by name, so the loops specialize
        case .float64: return [try gradient(step, g, layout, shape, as: Double.self)]
        default: throw OpError("\(kind.name) gradients need float32 or float64, got \(g.dtype)")
        }
    }

    private func gradient<T: FloatKernelScalar & ReducibleScalar>(
        _ step: BackwardStep, _ gradient: Tensor, _ layout: ReductionLayout, _ shape: [Int], as type: T.Type
    ) throws -> Tensor {
        let x = kind == .sum || kind == .mean ? gradient : try step.input(0)  // sum and mean read no input
        let y = [.l2, .logSumExp, .maximum, .minimum].contains(kind) ? try step.output(0) : gradient
        // Per output element: how many inputs share a max/min, or ReduceProd's zeros and other factors.
        let ties = kind == .maximum || kind == .minimum ? try tieCounts(x, y, layout, as: T.self) : []
        let factors = kind == .product ? try layout.fold(x, ZerosAndProductFold<T>.self) : []
        let scale = 1 / T(max(layout.reducedCount, 1))
        return try gradient.withUnsafeBuffer(as: T.self) { g in
            try x.withUnsafeBuffer(as: T.self) { x in
                try y.withUnsafeBuffer(as: T.self) { y in
                    try ties.withUnsafeBufferPointer { ties in
                        try factors.withUnsafeBufferPointer { factors in
                            try Tensor.build(T.self, shape: shape, writesAll: true) { dx in
                                // One switch per row, so each row is a plain loop.
                                layout.forEachRow { i, o, s, length in
                                    switch kind {
                                    case .sum: for k in 0..<length { dx[i + k] = g[o + k * s] }
                                    case .mean: for k in 0..<length { dx[i + k] = g[o + k * s] * scale }
                                    case .sumSquare: for k in 0..<length { dx[i + k] = 2 * x[i + k] * g[o + k * s] }
                                    case .l1:
                                        for k in 0..<length {
                                            let v = x[i + k]
                                            dx[i + k] = v > 0 ? g[o + k * s] : v < 0 ? -g[o + k * s] : 0
                                        }
                                    case .l2:
                                        for k in 0..<length {
                                            let norm = y[o + k * s]
                                            dx[i + k] = norm == 0 ? 0 : x[i + k] / norm * g[o + k * s]
                                        }
                                    case .logSumExp:
                                        for k in 0..<length { dx[i + k] = T.exp(x[i + k] - y[o + k * s]) * g[o + k * s] }
                                    case .maximum, .minimum:
                                        for k in 0..<length {
                                            // `share * 0`, not 0: with no tie (a NaN maximum) the share
                                            // is infinite or NaN and so is every gradient, as in PyTorch.
                                            let share = g[o + k * s] / T(ties[o + k * s])
                                            dx[i + k] = x[i + k] == y[o + k * s] ? share : share * 0
                                        }
                                    case .product:
                                        for k in 0..<length {
                                            let (zeros, others) = factors[o + k * s]
                                            let v = x[i + k]
                                            let rest: T.Accumulator =
                                                zeros == 0 ? T.Accumulator.divide(others, v.accumulated) : zeros == 1 && v == 0 ? others : .zero
                                            dx[i + k] = T(accumulated: rest) * g[o + k * s]
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// How many input elements equal their output element.
    private func tieCounts<T: ReducibleScalar>(_ x: Tensor, _ y: Tensor, _ layout: ReductionLayout, as type: T.Type) throws -> [Int] {
        var counts = [Int](repeating: 0, count: layout.outputCount)
        try x.withUnsafeBuffer(as: T.self) { x in
            try y.withUnsafeBuffer(as: T.self) { y in
                counts.withUnsafeMutableBufferPointer { counts in
                    layout.forEachRow { i, o, s, length in
                        for k in 0..<length where x[i + k] == y[o + k * s] { counts[o + k * s] += 1 }
                    }
                }
            }
        }
        return counts
    }
}

import Foundation
import ONNXModel
import TensorCore

// Ops driven by index tensors (GatherElements, GatherND, ScatterElements, ScatterND, OneHot),
// and the ops that make index-like tensors (NonZero, Range, Size). Tile, DepthToSpace,
// SpaceToDepth and Trilu, which rearrange without indices, are in Rearrange.swift.

extension OpRegistry {
    mutating func registerIndexing() {
        register("GatherElements") { context in GatherElements(axis: try context.attribute("axis", default: 0)) }
        register("GatherND") { context in GatherND(batchDims: try context.attribute("batch_dims", default: 0)) }
        register("ScatterElements") { context in
            ScatterElements(axis: try context.attribute("axis", default: 0), reduction: try scatterReduction(context))
        }
        register("ScatterND") { context in ScatterND(reduction: try scatterReduction(context)) }
        register("OneHot") { context in OneHot(axis: try context.attribute("axis", default: -1)) }
        register("NonZero", forward: nonZero)
        register("Range") { _ in Arange() }
        register("Size", forward: { inputs in [Tensor(scalar: Int64(try inputs.required(0).count))] })
        registerRearrangements()
        widenForHalfPrecision(["Range"])  // float16 ranges (opset 27) count in float32, as its default stash_type says
    }
}

/// The `reduction` attribute of the scatter ops (opset 16; max and min since 18), default none.
private func scatterReduction(_ context: OpContext) throws -> ScatterReduction {
    let name = try context.attribute("reduction", default: "none")
    guard let reduction = ScatterReduction(rawValue: name) else {
        throw context.invalid("reduction", "must be none, add, mul, max or min, got '\(name)'")
    }
    return reduction
}

/// `GatherElements`: `output[i][j] = data[indices[i][j]][j]` for axis 0, and likewise on any
/// `axis` (default 0); the output takes the indices' shape.
struct GatherElements: Operator {
    let axis: Int

    func slices(_ indices: Tensor, dataShape: [Int]) throws -> IndexedSlices {
        try IndexedSlices(elementsOf: indices, dataShape: dataShape, axis: Shape.normalize(axis: axis, rank: dataShape.count))
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let data = try inputs.required(0)
        return [try slices(inputs.required(1), dataShape: data.shape).gather(data)]
    }
}

/// `GatherND`: the slices of `data` that the index tuples in the last axis of `indices` address,
/// after `batch_dims` (default 0, opset 12) leading axes the two share.
struct GatherND: Operator {
    let batchDims: Int

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let data = try inputs.required(0)
        return [try IndexedSlices(tuplesOf: inputs.required(1), dataShape: data.shape, batchDims: batchDims).gather(data)]
    }
}

/// `ScatterElements`: `data` with `data[indices[i][j]][j] = updates[i][j]` for axis 0 (and
/// likewise on any `axis`), or combined under `reduction`.
struct ScatterElements: Operator {
    let axis: Int
    let reduction: ScatterReduction

    func slices(_ indices: Tensor, dataShape: [Int]) throws -> IndexedSlices {
        try IndexedSlices(elementsOf: indices, dataShape: dataShape, axis: Shape.normalize(axis: axis, rank: dataShape.count))
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let data = try inputs.required(0)
        return [try slices(inputs.required(1), dataShape: data.shape).scatter(inputs.required(2), into: data, reduction: reduction)]
    }
}

/// `ScatterND`: `data` with the slices that the index tuples address replaced by (or combined
/// under `reduction` with) the slices of `updates`.
struct ScatterND: Operator {
    let reduction: ScatterReduction

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let data = try inputs.required(0)
        let slices = try IndexedSlices(tuplesOf: inputs.required(1), dataShape: data.shape, batchDims: 0)
        return [try slices.scatter(inputs.required(2), into: data, reduction: reduction)]
    }
}

extension GatherElements: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1) }

    /// The gradient added back where each element came from.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let shape = try step.inputShape(0)
        return [try slices(step.input(1), dataShape: shape).gatherGradient(step.gradient(), dataShape: shape), nil]
    }
}

extension GatherND: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1) }

    /// The gradient's slices added back where each came from.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let shape = try step.inputShape(0)
        let slices = try IndexedSlices(tuplesOf: step.input(1), dataShape: shape, batchDims: batchDims)
        return [try slices.gatherGradient(step.gradient(), dataShape: shape), nil]
    }
}

extension ScatterElements: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1) }

    /// Data's gradient passes where no update landed, each update's is the gradient where it
    /// landed (reductions none and add; see ``IndexedSlices/scatterGradient(_:reduction:)``).
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let gradients = try slices(step.input(1), dataShape: step.inputShape(0)).scatterGradient(step.gradient(), reduction: reduction)
        return [step.wants(0) ? gradients.data : nil, nil, step.wants(2) ? gradients.updates : nil]
    }
}

extension ScatterND: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1) }

    /// As ScatterElements, slice by slice.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let slices = try IndexedSlices(tuplesOf: step.input(1), dataShape: step.inputShape(0), batchDims: 0)
        let gradients = try slices.scatterGradient(step.gradient(), reduction: reduction)
        return [step.wants(0) ? gradients.data : nil, nil, step.wants(2) ? gradients.updates : nil]
    }
}

/// `OneHot(indices, depth, values)`: `values[1]` where the new axis `axis` (default -1, the
/// last) equals the index, `values[0]` elsewhere.
///
/// Indices and depth of any numeric type are truncated to integers, as the spec's cast to
/// int64 does; negative indices count from `depth`, and one outside `[-depth, depth)` leaves its
/// row all `values[0]` (the spec's rule, not an error). Depth must be at least 1.
struct OneHot: Operator {
    let axis: Int

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let indices = try inputs.required(0)
        let values = try inputs.required(2)
        guard values.count == 2 else { throw OpError("values must hold [off, on], got \(values.shape)") }
        let depthValues = try inputs.required(1).doubles()
        // 2⁶² bounds the conversion to Int; allocation refuses anything near it anyway.
        guard depthValues.count == 1, let depthValue = depthValues.first, depthValue >= 1, depthValue < 0x1p62 else {
            throw OpError("depth must be one value from 1 up, got \(depthValues)")
        }
        let depth = Int(depthValue)
        let axis = try Shape.normalize(axis: self.axis, rank: indices.rank + 1)
        let output = try Tensor(uninitialized: values.dtype, shape: Array(indices.shape[..<axis]) + [depth] + indices.shape[axis...])
        let split = AxisSplit(output.shape, axis: axis)
        let positions = try indices.doubles()
        func run<E>(_ type: E.Type) {
            let (off, on) = (values.unsafeElements(bitsAs: E.self)[0], values.unsafeElements(bitsAs: E.self)[1])
            let out = output.unsafeMutableElements(bitsAs: E.self)
            out.update(repeating: off)
            for o in 0..<split.outer {
                for j in 0..<split.inner {
                    let value = positions[o * split.inner + j]
                    // Truncated toward zero (the cast to int64), values in (-depth - 1, depth) fall
                    // in [-depth, depth); NaN fails the test too.
                    guard value > -Double(depth) - 1, value < Double(depth) else { continue }
                    let index = Int(value)
                    out[(o * depth + (index < 0 ? index + depth : index)) * split.inner + j] = on
                }
            }
        }
        withExtendedLifetime(values) { moving(values.dtype, run(UInt8.self), run(UInt16.self), run(UInt32.self), run(UInt64.self)) }
        return [output]
    }
}

/// `NonZero`: the int64 coordinates of the nonzero elements, as `[rank, count]` in row-major
/// order (NaN is nonzero, -0.0 is zero); a rank-0 input gives `[0, count]`, as NumPy's reference.
func nonZero(_ inputs: OpInputs) throws -> [Tensor?] {
    let x = try inputs.required(0)
    let values = try x.doubles()
    let found = values.indices.filter { values[$0] != 0 }
    let strides = Shape.strides(x.shape)
    return [
        try Tensor.build(Int64.self, shape: [x.rank, found.count], writesAll: true) { out in
            for (n, flat) in found.enumerated() {
                for axis in 0..<x.rank { out[axis * found.count + n] = Int64(flat / strides[axis] % x.shape[axis]) }
            }
        }
    ]
}

/// `Range(start, limit, delta)` (named as NumPy names it, so Swift's `Range` stays visible): `start + i·delta` for `i < max(⌈(limit - start) / delta⌉, 0)`.
///
/// Integers count exactly; floating-point counts and values are computed in double precision.
/// A zero delta, or a count that does not fit, is an error.
struct Arange: Operator {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let operands = try (0..<3).map { try inputs.required($0) }
        guard operands.allSatisfy({ $0.dtype == operands[0].dtype && $0.count == 1 }) else {
            throw OpError("start, limit and delta must be single values of one type, got \(operands.map { "\($0.dtype)\($0.shape)" })")
        }
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            let (start, limit, delta) = try (operands[0].scalars(as: T.self)[0], operands[1].scalars(as: T.self)[0], operands[2].scalars(as: T.self)[0])
            guard delta != .zero else { throw OpError("delta is 0, so the range from \(start) to \(limit) never ends") }
            if T.isIntegral {
                let (s, l, d) = (start.int64Value, limit.int64Value, delta.int64Value)
                let count = try Arange.count(from: s, to: l, by: d)
                return try Tensor.build(T.self, shape: [count], writesAll: true) { out in
                    for i in 0..<count { out[i] = T(int64Value: s &+ Int64(i) &* d) }  // stays between start and limit
                }
            }
            let (s, d) = (start.doubleValue, delta.doubleValue)
            let steps = ((limit.doubleValue - s) / d).rounded(.up)
            guard !steps.isNaN, steps < 0x1p62 else { throw OpError("the range from \(start) to \(limit) by \(delta) has \(steps) elements") }
            return try Tensor.build(T.self, shape: [Int(max(steps, 0))], writesAll: true) { out in
                for i in out.indices { out[i] = T(doubleValue: s + Double(i) * d) }
            }
        }
        return [try withArithmeticType(operands[0].dtype, "Range") { try run($0) }]
    }

    /// `max(⌈(limit - start) / delta⌉, 0)` without overflow.
    static func count(from start: Int64, to limit: Int64, by delta: Int64) throws -> Int {
        guard delta > 0 ? limit > start : limit < start else { return 0 }
        // The distance and the step as magnitudes: both fit in UInt64 whatever the signs.
        let distance = delta > 0 ? UInt64(bitPattern: limit &- start) : UInt64(bitPattern: start &- limit)
        let (quotient, remainder) = distance.quotientAndRemainder(dividingBy: delta.magnitude)
        let count = quotient + (remainder > 0 ? 1 : 0)
        guard count < 1 << 62 else { throw OpError("the range from \(start) to \(limit) by \(delta) has \(count) elements") }
        return Int(count)
    }
}

import ONNXModel
import TensorCore

// Reductions along one axis that select elements: ArgMax, ArgMin and TopK. NaN ranks above
// every number (first for ArgMax, ArgMin and TopK's largest, last for TopK's smallest), as in
// NumPy and PyTorch.

/// A tensor seen as `[outer, extent, inner]` around one axis.
struct AxisSplit {
    let outer: Int
    let extent: Int
    let inner: Int

    init(_ shape: [Int], axis: Int) {
        outer = shape[..<axis].reduce(1, *)
        extent = shape[axis]
        inner = shape[(axis + 1)...].reduce(1, *)
    }
}

/// `ArgMax` / `ArgMin`: the int64 index of the largest (smallest) element along `axis` (default 0).
///
/// Ties go to the first index, or to the last with `select_last_index` (opset 12).
struct ArgExtremum: Operator {
    let largest: Bool
    let axis: Int
    let keepDims: Bool
    let selectLastIndex: Bool

    init(_ context: OpContext, largest: Bool) throws {
        self.largest = largest
        axis = try context.attribute("axis", default: 0)
        keepDims = try context.attribute("keepdims", default: 1) != 0
        selectLastIndex = try context.attribute("select_last_index", default: 0) != 0
    }

    var name: String { largest ? "ArgMax" : "ArgMin" }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let axis = try Shape.normalize(axis: self.axis, rank: x.rank)
        let split = AxisSplit(x.shape, axis: axis)
        guard split.extent > 0 else { throw OpError("\(name) over axis \(axis) of \(x.shape), which is empty") }
        var shape = x.shape
        if keepDims { shape[axis] = 1 } else { shape.remove(at: axis) }
        func run<T: ReducibleScalar>(_ type: T.Type) throws -> Tensor {
            try x.withUnsafeBuffer(as: T.self) { x in
                try Tensor.build(Int64.self, shape: shape, writesAll: true) { out in
                    for o in 0..<split.outer {
                        for j in 0..<split.inner {
                            let base = o * split.extent * split.inner + j
                            var best = x[base]
                            var index = 0
                            for a in 1..<split.extent {
                                let v = x[base + a * split.inner]
                                if best != best {  // a NaN already holds the place
                                    if selectLastIndex && v != v { index = a }
                                } else if v != v || (largest ? v > best : v < best) || (selectLastIndex && v == best) {
                                    best = v
                                    index = a
                                }
                            }
                            out[o * split.inner + j] = Int64(index)
                        }
                    }
                }
            }
        }
        if x.dtype == .float32 { return [try run(Float.self)] }
        return [try withReducibleType(x.dtype, name) { try run($0) }]
    }
}

/// `TopK`: the `k` largest (or, with `largest` = 0 since opset 11, smallest) elements along
/// `axis` (default -1) and their int64 indices, sorted; equal values keep index order.
///
/// `k` is an attribute before opset 10 and the second input (one int64) since. The output is
/// sorted even when `sorted` = 0, which leaves the order to us.
struct TopK: Operator {
    let axis: Int
    let attributeK: Int?
    let largest: Bool

    init(_ context: OpContext) throws {
        axis = try context.attribute("axis", default: -1)
        attributeK = context.opset < 10 ? try context.node.requiredAttribute("k") : nil
        largest = try context.attribute("largest", default: 1) != 0
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let axis = try Shape.normalize(axis: self.axis, rank: x.rank)
        let split = AxisSplit(x.shape, axis: axis)
        let k = try attributeK ?? inputs.required(1).integers().only("K")
        guard k >= 0, k <= split.extent else {
            throw OpError("k = \(k) is outside [0, \(split.extent)], the extent of axis \(axis) of \(x.shape)")
        }
        var shape = x.shape
        shape[axis] = k
        func run<T: ReducibleScalar>(_ type: T.Type) throws -> [Tensor?] {
            let indices = try Tensor(uninitialized: .int64, shape: shape)
            let values = try x.withUnsafeBuffer(as: T.self) { x in
                try Tensor.build(T.self, shape: shape, writesAll: true) { values in
                    let picked = indices.unsafeMutableElements(as: Int64.self)
                    var slice = [T](repeating: .zero, count: split.extent)
                    var order = [Int](repeating: 0, count: split.extent)
                    for o in 0..<split.outer {
                        for j in 0..<split.inner {
                            let base = o * split.extent * split.inner + j
                            for a in 0..<split.extent {
                                slice[a] = x[base + a * split.inner]
                                order[a] = a
                            }
                            order.sort { a, b in
                                let (u, v) = (slice[a], slice[b])
                                if u != u || v != v { return u != u && v != v ? a < b : (largest ? u != u : v != v) }
                                return u == v ? a < b : largest ? u > v : u < v
                            }
                            for r in 0..<k {
                                let position = (o * k + r) * split.inner + j
                                values[position] = slice[order[r]]
                                picked[position] = Int64(order[r])
                            }
                        }
                    }
                }
            }
            return [values, indices]
        }
        if x.dtype == .float32 { return try run(Float.self) }
        return try withReducibleType(x.dtype, "TopK") { try run($0) }
    }
}

extension [Int] {
    /// The one element of a shape-like input that must hold exactly one (TopK's K, CumSum's axis).
    func only(_ name: String) throws -> Int {
        guard count == 1 else { throw OpError("\(name) must hold exactly one value, got \(self)") }
        return self[0]
    }
}

extension TopK: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .outputs(1) }

    /// The values' gradient added back at the indices they came from; indices get none.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient(0)
        let shape = try step.inputShape(0)
        let picked = try step.output(1).integers()
        let axis = try Shape.normalize(axis: self.axis, rank: shape.count)
        let split = AxisSplit(shape, axis: axis)
        let k = g.shape[axis]
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try g.withUnsafeBuffer(as: T.self) { g in
                try Tensor.build(T.self, shape: shape) { dx in
                    for o in 0..<split.outer {
                        for r in 0..<k {
                            for j in 0..<split.inner {
                                let position = (o * k + r) * split.inner + j
                                dx[(o * split.extent + picked[position]) * split.inner + j] += g[position]
                            }
                        }
                    }
                }
            }
        }
        return [try withFloatType(g.dtype, "TopK") { try run($0) }, nil]
    }
}

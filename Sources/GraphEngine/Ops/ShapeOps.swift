import ONNXModel
import TensorCore

// Ops that move or reinterpret data without arithmetic: reshaping, transposing, slicing,
// joining, gathering, and the ops that make shape tensors and constants.

extension OpRegistry {
    mutating func registerShapeOps() {
        register("Reshape") { context in Reshape(allowZero: try context.attribute("allowzero", default: 0) != 0) }
        register("Flatten") { context in Flatten(axis: try context.attribute("axis", default: 1)) }
        register("Transpose") { context in Transpose(perm: try context.attribute("perm")) }
        register("Concat") { context in Concat(axis: try context.node.requiredAttribute("axis")) }
        register("Split") { context in try Split(context) }
        register("Slice") { context in try Slice(context) }
        register("Gather") { context in Gather(axis: try context.attribute("axis", default: 0)) }
        register("Squeeze") { context in
            try SqueezeUnsqueeze(squeeze: true, attributeAxes: context.opset < 13 ? context.attribute("axes") : nil)
        }
        register("Unsqueeze") { context in
            try SqueezeUnsqueeze(squeeze: false, attributeAxes: context.opset < 13 ? context.attribute("axes") : nil)
        }
        register("Expand") { _ in Expand() }
        register("Shape") { context in
            ShapeOf(start: try context.attribute("start", default: 0), end: try context.attribute("end"))
        }
        register("ConstantOfShape") { context in try ConstantOfShape(context) }
        register("Constant") { context in try Constant(context) }
    }
}

/// `Reshape`: 0 copies the input's extent (unless `allowzero`), -1 is inferred. Shares storage.
struct Reshape: Operator {
    let allowZero: Bool

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let requested = try inputs.required(1).integers()
        var shape = requested
        var inferred: Int?
        for (axis, dim) in requested.enumerated() {
            switch dim {
            case 0 where !allowZero:
                guard axis < x.rank else { throw OpError("shape \(requested) copies axis \(axis) of a rank-\(x.rank) input") }
                shape[axis] = x.shape[axis]
            case -1:
                guard inferred == nil else { throw OpError("shape \(requested) has more than one -1") }
                inferred = axis
            case ..<(-1): throw OpError("shape \(requested) has an invalid dimension \(dim)")
            default: break
            }
        }
        if let inferred {
            let known = try Shape.elementCount(shape.enumerated().map { $0.offset == inferred ? 1 : $0.element })
            guard known > 0, x.count % known == 0 else {
                throw OpError("cannot reshape \(x.shape) (\(x.count) elements) to \(requested)")
            }
            shape[inferred] = x.count / known
        }
        guard (try? Shape.elementCount(shape)) == x.count else {
            throw OpError("cannot reshape \(x.shape) (\(x.count) elements) to \(requested)")
        }
        return [try x.reshaped(shape)]
    }
}

/// `Flatten`: collapses the axes before `axis` into one and the rest into another.
struct Flatten: Operator {
    let axis: Int

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let split = axis < 0 ? axis + x.rank : axis
        guard split >= 0, split <= x.rank else { throw OpError("axis \(axis) is out of range for rank \(x.rank)") }
        let outer = x.shape[..<split].reduce(1, *)
        return [try x.reshaped([outer, outer == 0 ? 0 : x.count / max(outer, 1)])]
    }
}

/// `Transpose`: permutes axes; the default reverses them.
struct Transpose: Operator {
    let perm: [Int]?

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let perm = self.perm ?? Array((0..<x.rank).reversed())
        guard perm.count == x.rank, Set(perm) == Set(0..<x.rank) else {
            throw OpError("perm \(perm) is not a permutation of the \(x.rank) axes of \(x.shape)")
        }
        // Moving only axes of extent 1 keeps every element where it is (a batch of one's
        // `[1, T, C] → [T, 1, C]` in exported attention): the same storage, reshaped.
        let strides = Shape.strides(x.shape)
        return [try stridedView(x, shape: perm.map { x.shape[$0] }, strides: perm.map { strides[$0] })]
    }
}

/// `Concat`: joins inputs along `axis`; all other extents must agree.
struct Concat: Operator {
    let axis: Int

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let parts = inputs.tensors.compactMap { $0 }
        guard let first = parts.first else { throw OpError("Concat needs at least one input") }
        let axis = try Shape.normalize(axis: self.axis, rank: first.rank)
        var shape = first.shape
        shape[axis] = 0
        for part in parts {
            guard part.dtype == first.dtype, part.rank == first.rank,
                (0..<first.rank).allSatisfy({ $0 == axis || part.shape[$0] == first.shape[$0] })
            else { throw OpError("cannot concatenate \(first.dtype)\(first.shape) and \(part.dtype)\(part.shape) on axis \(axis)") }
            shape[axis] += part.shape[axis]
        }
        let output = try Tensor(zeros: first.dtype, shape: shape)
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *) * first.dtype.byteSize
        var column = 0
        for part in parts {
            let block = part.shape[axis] * inner
            withExtendedLifetime(part) {
                copyBlocks(
                    from: part.storage.base, sourceStride: block, to: output.storage.base + column,
                    destinationStride: shape[axis] * inner, rows: outer, blockBytes: block)
            }
            column += block
        }
        return [output]
    }
}

/// `Split`: cuts the input along `axis` into parts whose sizes come from the `split` input
/// (opset 13+), the `split` attribute (before 13), or equal parts (`num_outputs` since 18).
struct Split: Operator {
    let axis: Int
    let attributeSizes: [Int]?
    let outputCount: Int

    init(axis: Int, attributeSizes: [Int]?, outputCount: Int) {
        self.axis = axis
        self.attributeSizes = attributeSizes
        self.outputCount = outputCount
    }

    init(_ context: OpContext) throws {
        axis = try context.attribute("axis", default: 0)
        attributeSizes = context.opset < 13 ? try context.attribute("split") : nil
        outputCount = context.node.outputs.count
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let axis = try Shape.normalize(axis: self.axis, rank: x.rank)
        let extent = x.shape[axis]
        var sizes = try attributeSizes ?? inputs[1]?.integers() ?? []
        if sizes.isEmpty {
            // Equal parts; with num_outputs (opset 18) the last part may be smaller.
            let chunk = (extent + outputCount - 1) / max(outputCount, 1)
            sizes = (0..<outputCount).map { max(0, min(chunk, extent - $0 * chunk)) }
        }
        guard sizes.count == outputCount, sizes.allSatisfy({ $0 >= 0 && $0 <= extent }), sizes.reduce(0, +) == extent else {
            throw OpError("split sizes \(sizes) do not cut axis \(axis) of \(x.shape) into \(outputCount) parts")
        }
        let outer = x.shape[..<axis].reduce(1, *)
        let inner = x.shape[(axis + 1)...].reduce(1, *) * x.dtype.byteSize
        var column = 0
        return try sizes.map { size in
            var shape = x.shape
            shape[axis] = size
            if outer == 1 {  // each part is a contiguous block
                defer { column += size * inner }
                return try x.contiguousBlock(from: column / x.dtype.byteSize, shape: shape)
            }
            let part = try Tensor(uninitialized: x.dtype, shape: shape)  // every row's block is written
            withExtendedLifetime(x) {
                copyBlocks(
                    from: x.storage.base + column, sourceStride: extent * inner, to: part.storage.base,
                    destinationStride: size * inner, rows: outer, blockBytes: size * inner)
            }
            column += size * inner
            return part
        }
    }
}

/// `Slice`: a strided window per axis, from inputs (opset 10+) or attributes (before 10).
struct Slice: Operator {
    let attributes: (starts: [Int], ends: [Int], axes: [Int]?)?

    init(_ context: OpContext) throws {
        attributes =
            context.opset < 10
            ? (try context.node.requiredAttribute("starts"), try context.node.requiredAttribute("ends"),
                try context.attribute("axes")) : nil
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let view = try window(over: x.shape, inputs.tensors)
        return [try stridedView(x, shape: view.shape, strides: view.strides, offset: view.offset)]
    }

    /// The sliced view of a tensor of `shape`: its extents, strides and first element.
    func window(over shape: [Int], _ inputs: [Tensor?]) throws -> (shape: [Int], strides: [Int], offset: Int) {
        func input(_ index: Int) throws -> Tensor? { index < inputs.count ? inputs[index] : nil }
        guard let starts = try attributes?.starts ?? input(1)?.integers(), let ends = try attributes?.ends ?? input(2)?.integers()
        else { throw OpError("Slice needs starts and ends") }
        let axes = try attributes.map { $0.axes } ?? input(3)?.integers()
        let steps = try attributes == nil ? input(4)?.integers() : nil
        let axisList = axes ?? Array(0..<starts.count)
        guard ends.count == starts.count, axisList.count == starts.count, (steps?.count ?? starts.count) == starts.count else {
            throw OpError("starts, ends, axes and steps must have equal lengths")
        }
        let strides = Shape.strides(shape)
        var sliced = shape
        var viewStrides = strides
        var offset = 0
        var seen = Set<Int>()
        for (i, rawAxis) in axisList.enumerated() {
            let axis = try Shape.normalize(axis: rawAxis, rank: shape.count)
            guard seen.insert(axis).inserted else { throw OpError("axis \(axis) is sliced twice") }
            let dim = shape[axis]
            // A step longer than the axis takes at most one element; clamping keeps the arithmetic in range.
            let step = max(min(steps?[i] ?? 1, dim + 1), -(dim + 1))
            guard step != 0 else { throw OpError("slice step cannot be 0") }
            var start = starts[i] < 0 ? starts[i] &+ dim : starts[i]
            var end = ends[i] < 0 ? ends[i] &+ dim : ends[i]
            if step > 0 {
                start = min(max(start, 0), dim)
                end = min(max(end, 0), dim)
            } else {
                start = min(max(start, 0), dim - 1)
                end = min(max(end, -1), dim - 1)
            }
            let length = step > 0 ? max(0, (end - start + step - 1) / step) : max(0, (start - end - step - 1) / -step)
            sliced[axis] = length
            viewStrides[axis] = strides[axis] * step
            if length > 0 { offset += start * strides[axis] }
        }
        return (sliced, viewStrides, offset)
    }
}

/// `Gather`: picks entries of `data` along `axis` by (possibly negative) index.
struct Gather: Operator {
    let axis: Int

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let data = try inputs.required(0)
        let indicesTensor = try inputs.required(1)
        let indices = try indicesTensor.integers()
        let axis = try Shape.normalize(axis: self.axis, rank: data.rank)
        let extent = data.shape[axis]
        let shape = Array(data.shape[..<axis]) + indicesTensor.shape + Array(data.shape[(axis + 1)...])
        let resolved = try indices.map { rawIndex in
            let index = rawIndex < 0 ? rawIndex + extent : rawIndex
            guard index >= 0, index < extent else {
                throw OpError("index \(rawIndex) is out of range for axis \(axis) of extent \(extent)")
            }
            return index
        }
        let outer = data.shape[..<axis].reduce(1, *)
        let inner = data.shape[(axis + 1)...].reduce(1, *) * data.dtype.byteSize
        if outer == 1, resolved.count == 1 {  // one contiguous block
            return [try data.contiguousBlock(from: resolved[0] * inner / data.dtype.byteSize, shape: shape)]
        }
        let output = try Tensor(uninitialized: data.dtype, shape: shape)  // every index's blocks are written
        for (position, index) in resolved.enumerated() {
            withExtendedLifetime(data) {
                copyBlocks(
                    from: data.storage.base + index * inner, sourceStride: extent * inner,
                    to: output.storage.base + position * inner, destinationStride: indices.count * inner,
                    rows: outer, blockBytes: inner)
            }
        }
        return [output]
    }
}

/// `Squeeze` / `Unsqueeze`: remove or insert size-1 axes; axes come from an input since opset 13.
struct SqueezeUnsqueeze: Operator {
    let squeeze: Bool
    let attributeAxes: [Int]?

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let axes = try attributeAxes ?? inputs[1]?.integers()
        if squeeze {
            let removed = try Set((axes ?? x.shape.indices.filter { x.shape[$0] == 1 }).map {
                try Shape.normalize(axis: $0, rank: x.rank)
            })
            if let bad = removed.first(where: { x.shape[$0] != 1 }) {
                throw OpError("cannot squeeze axis \(bad) of \(x.shape): its extent is not 1")
            }
            return [try x.reshaped(x.shape.indices.filter { !removed.contains($0) }.map { x.shape[$0] })]
        }
        guard let axes else { throw OpError("Unsqueeze needs axes") }
        let rank = x.rank + axes.count
        let inserted = try Set(axes.map { try Shape.normalize(axis: $0, rank: rank) })
        guard inserted.count == axes.count else { throw OpError("axes \(axes) repeat an axis") }
        var remaining = x.shape.makeIterator()
        return [try x.reshaped((0..<rank).map { inserted.contains($0) ? 1 : remaining.next() ?? 1 })]
    }
}

/// `Expand`: broadcasts the input to a shape (bidirectionally, as NumPy does).
struct Expand: Operator {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let shape = try Shape.broadcast(x.shape, inputs.required(1).integers())
        return [try stridedCopy(x, shape: shape, strides: Shape.broadcastStrides(x.shape, to: shape))]
    }
}

/// `Shape`: the input's extents as int64, optionally a `[start, end)` range of axes (opset 15).
struct ShapeOf: Operator {
    let start: Int
    let end: Int?

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let shape = try inputs.required(0).shape
        func clamp(_ value: Int) -> Int { min(max(value < 0 ? value + shape.count : value, 0), shape.count) }
        let range = Array(shape[clamp(start)..<max(clamp(start), clamp(end ?? shape.count))])
        return [try Tensor(shape: [range.count], scalars: range.map { Int64($0) })]
    }
}

/// `ConstantOfShape`: a tensor of the given shape filled with `value` (float32 zero by default).
struct ConstantOfShape: Operator {
    let value: Tensor

    init(_ context: OpContext) throws {
        value = try context.attribute("value", as: Tensor.self) ?? Tensor(scalar: Float(0))
        guard value.count == 1 else { throw context.invalid("value", "must hold exactly one element") }
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let shape = try inputs.required(0).integers()
        let output = try Tensor(zeros: value.dtype, shape: shape)
        let size = value.dtype.byteSize
        withExtendedLifetime(value) {
            for i in 0..<output.count { (output.storage.base + i * size).copyMemory(from: value.storage.base, byteCount: size) }
        }
        return [output]
    }
}

/// `Constant`: a tensor from whichever `value*` attribute the node sets.
struct Constant: Operator {
    let value: Tensor

    init(_ context: OpContext) throws {
        guard let value = try context.node.constantValue() else { throw OpError("not a Constant node") }
        self.value = value
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] { [value] }
}

// MARK: - Backward

/// Shape-only ops (Reshape, Flatten, Squeeze, Unsqueeze): the gradient takes the input's shape back.
extension Reshape: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }
    func backward(_ step: BackwardStep) throws -> [Tensor?] { [try step.gradient().reshaped(step.inputShape(0))] }
}

extension Flatten: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }
    func backward(_ step: BackwardStep) throws -> [Tensor?] { [try step.gradient().reshaped(step.inputShape(0))] }
}

extension SqueezeUnsqueeze: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }
    func backward(_ step: BackwardStep) throws -> [Tensor?] { [try step.gradient().reshaped(step.inputShape(0))] }
}

extension Expand: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }
    /// The reverse pass sums the broadcast gradient back to the input's shape.
    func backward(_ step: BackwardStep) throws -> [Tensor?] { [try step.gradient()] }
}

extension Transpose: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }

    /// The inverse permutation.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let rank = try step.inputShape(0).count
        let perm = self.perm ?? Array((0..<rank).reversed())
        var inverse = [Int](repeating: 0, count: perm.count)
        for (position, axis) in perm.enumerated() { inverse[axis] = position }
        return try Transpose(perm: inverse).forward(OpInputs([step.gradient()]))
    }
}

extension Concat: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }

    /// The gradient split back into the inputs' extents along the axis.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let axis = try Shape.normalize(axis: self.axis, rank: g.rank)
        let present = step.inputShapes.compactMap { $0 }
        let parts = try Split(axis: axis, attributeSizes: present.map { $0[axis] }, outputCount: present.count).forward(OpInputs([g]))
        var next = parts.makeIterator()
        return step.inputShapes.map { $0 == nil ? nil : next.next() ?? nil }
    }
}

extension Split: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }

    /// The output gradients joined along the axis, zeros where none arrived.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let parts = try step.outputShapes.indices.map { try step.gradient($0) }
        return [try Concat(axis: axis).forward(OpInputs(parts))[0]]
    }
}

extension Slice: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1, 2, 3, 4) }

    /// The gradient written into zeros at the sliced positions.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let shape = try step.inputShape(0)
        let view = try window(over: shape, step.inputs)
        let result = try Tensor(zeros: g.dtype, shape: shape)
        try stridedScatter(g, into: result, strides: view.strides, offset: view.offset)
        return [result]
    }
}

extension Gather: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1) }

    /// Each gathered block's gradient added back at its index (repeated indices accumulate).
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let shape = try step.inputShape(0)
        let indices = try step.input(1).integers()
        let axis = try Shape.normalize(axis: self.axis, rank: shape.count)
        let extent = shape[axis]
        let outer = shape[..<axis].reduce(1, *)
        let inner = shape[(axis + 1)...].reduce(1, *)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try g.withUnsafeBuffer(as: T.self) { gradient in
                try Tensor.build(T.self, shape: shape) { out in
                    for (position, rawIndex) in indices.enumerated() {
                        let index = rawIndex < 0 ? rawIndex + extent : rawIndex
                        guard index >= 0, index < extent else { continue }
                        for o in 0..<outer {
                            let source = (o * indices.count + position) * inner
                            let destination = (o * extent + index) * inner
                            for i in 0..<inner { out[destination + i] += gradient[source + i] }
                        }
                    }
                }
            }
        }
        // float32 by name so `run` is specialized (opened from the existential it stays generic).
        if g.dtype == .float32 { return [try run(Float.self), nil] }
        return [try withFloatType(g.dtype, "Gather") { try run($0) }, nil]
    }
}

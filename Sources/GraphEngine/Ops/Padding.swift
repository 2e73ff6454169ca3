import ONNXModel
import TensorCore

// Pad: constant, reflect, edge and wrap padding, with negative pads cropping.

extension OpRegistry {
    mutating func registerPadding() {
        register("Pad") { context in try Pad(context) }
    }
}

/// `Pad`: pads (or, where a pad is negative, crops) each axis.
///
/// Negative pads crop first and the modes then pad the cropped extent, as onnxruntime does:
/// `reflect` mirrors without repeating the edge (periodically, as NumPy does, when a pad is longer
/// than the axis), `edge` repeats the border element, `wrap` continues periodically.
/// Pads come from the `pads` attribute (opset < 11) or input; opset 18 adds the `axes` input.
struct Pad: DifferentiableOperator {
    enum Mode: String { case constant, reflect, edge, wrap }

    let mode: Mode
    /// Opset < 11: `pads` and `value` are attributes.
    let attributePads: [Int]?
    let attributeValue: Float

    init(_ context: OpContext) throws {
        let name = try context.attribute("mode", default: "constant")
        guard let mode = Mode(rawValue: name) else {
            throw context.invalid("mode", "must be constant, reflect, edge or wrap, got '\(name)'")
        }
        self.mode = mode
        if context.opset < 11 {
            attributePads = try context.node.requiredAttribute("pads")
            attributeValue = try context.attribute("value", default: Float(0))
        } else {
            attributePads = nil
            attributeValue = 0
        }
    }

    /// The padding of each axis and the output's shape.
    struct Plan {
        let inputShape: [Int]
        let outputShape: [Int]
        let begin: [Int]
        let end: [Int]
    }

    /// The plan for an input of `shape`, from the pads (`[begin…, end…]` over `axes`).
    func plan(shape: [Int], pads: [Int], axes: [Int]?) throws -> Plan {
        let rank = shape.count
        let axes = try (axes ?? Array(0..<rank)).map { try Shape.normalize(axis: $0, rank: rank) }
        guard Set(axes).count == axes.count else { throw OpError("Pad axes \(axes) repeat an axis") }
        guard pads.count == 2 * axes.count else {
            throw OpError("Pad needs \(2 * axes.count) pads for \(axes.count) axes, got \(pads.count)")
        }
        // Bounded so that negating a pad and adding two to an extent cannot overflow.
        if let wild = pads.first(where: { $0 <= Int.min / 4 || $0 >= Int.max / 4 }) {
            throw OpError("pad \(wild) is out of range")
        }
        var begin = [Int](repeating: 0, count: rank)
        var end = [Int](repeating: 0, count: rank)
        for (i, axis) in axes.enumerated() {
            begin[axis] = pads[i]
            end[axis] = pads[axes.count + i]
        }
        var outputShape = shape
        for axis in 0..<rank {
            let (partial, overflow1) = shape[axis].addingReportingOverflow(begin[axis])
            let (total, overflow2) = partial.addingReportingOverflow(end[axis])
            guard !overflow1, !overflow2, total >= 0 else {
                throw OpError("pads \(begin[axis]), \(end[axis]) on axis \(axis) of extent \(shape[axis]) give an invalid extent")
            }
            outputShape[axis] = total
        }
        return Plan(inputShape: shape, outputShape: outputShape, begin: begin, end: end)
    }

    /// Per axis and output coordinate, the input coordinate read, or -1 for the constant. Called
    /// once a tensor of the output's shape exists, so the tables are no longer than it.
    func sources(_ plan: Plan) throws -> [[Int]] {
        guard try Shape.elementCount(plan.outputShape) > 0 else { return plan.outputShape.map { _ in [] } }
        return try plan.inputShape.indices.map { axis in
            try axisSources(
                extent: plan.inputShape[axis], begin: plan.begin[axis], end: plan.end[axis], length: plan.outputShape[axis],
                axis: axis)
        }
    }

    /// The input coordinate each of an axis's `length` output coordinates reads.
    private func axisSources(extent: Int, begin: Int, end: Int, length: Int, axis: Int) throws -> [Int] {
        let low = max(0, -begin)
        let kept = extent - low - max(0, -end)
        let before = max(0, begin)
        if kept <= 0, mode != .constant, length > 0 {
            throw OpError("\(mode.rawValue) padding needs a non-empty axis \(axis) after cropping, got extent \(max(kept, 0))")
        }
        return (0..<length).map { o in
            let i = o - before
            if i >= 0, i < kept { return low + i }
            switch mode {
            case .constant: return -1
            case .edge: return low + min(max(i, 0), kept - 1)
            case .wrap: return low + ((i % kept) + kept) % kept
            case .reflect:
                guard kept > 1 else { return low }
                let period = 2 * (kept - 1)
                let j = ((i % period) + period) % period
                return low + (j < kept ? j : period - j)
            }
        }
    }

    /// The pads and axes of one invocation.
    private func padsAndAxes(_ tensors: [Tensor?]) throws -> ([Int], [Int]?) {
        if let attributePads { return (attributePads, nil) }
        guard tensors.count > 1, let pads = tensors[1] else { throw OpError("Pad needs the pads input") }
        let axes = tensors.count > 3 ? try tensors[3]?.integers() : nil
        return (try pads.integers(), axes)
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let (pads, axes) = try padsAndAxes(inputs.tensors)
        let plan = try plan(shape: x.shape, pads: pads, axes: axes)
        let output = try Tensor(uninitialized: x.dtype, shape: plan.outputShape)
        guard output.count > 0 else { return [output] }
        let sources = try sources(plan)
        // The constant as the data's type: the attribute, or input 2 (a scalar or one-element tensor).
        let fill: Tensor
        if attributePads != nil {
            fill = try Tensor(scalar: attributeValue).converted(to: x.dtype)
        } else if let value = inputs[2], value.count > 0 {
            guard value.count == 1 else { throw OpError("constant_value must hold one value, got \(value.shape)") }
            fill = try value.converted(to: x.dtype)
        } else {
            fill = try Tensor(zeros: x.dtype, shape: [])
        }
        func run<E>(_ type: E.Type) {
            let source = x.unsafeElements(bitsAs: E.self)
            let target = output.unsafeMutableElements(bitsAs: E.self)
            let constant = fill.unsafeElements(bitsAs: E.self)[0]
            forEachRow(plan, sources) { inputRow, outputRow, row in
                guard let inputRow else {
                    target.address(at: outputRow, count: row.count).update(repeating: constant, count: row.count)
                    return
                }
                // The sources of a row are increasing by one over its unpadded middle: copy it in one go.
                var o = 0
                while o < row.count {
                    let s = row[o]
                    if s < 0 {
                        target[outputRow + o] = constant
                        o += 1
                        continue
                    }
                    var run = 1
                    while o + run < row.count, row[o + run] == s + run { run += 1 }
                    target.address(at: outputRow + o, count: run).update(from: source.address(at: inputRow + s, count: run), count: run)
                    o += run
                }
            }
        }
        withExtendedLifetime((x, fill)) { moving(x.dtype, run(UInt8.self), run(UInt16.self), run(UInt32.self), run(UInt64.self)) }
        return [output]
    }

    /// Visits the output's innermost rows in order: `inputRow` is the offset of the input row
    /// read (nil when an outer coordinate is padding), `outputRow` the output offset, and `row`
    /// the last axis's source table.
    private func forEachRow(
        _ plan: Plan, _ sources: [[Int]], _ body: (_ inputRow: Int?, _ outputRow: Int, _ row: [Int]) -> Void
    ) {
        let rank = plan.inputShape.count
        guard rank > 0 else { return body(0, 0, [0]) }
        let inputStrides = Shape.strides(plan.inputShape)
        let last = sources[rank - 1]
        let outer = Array(plan.outputShape.dropLast())
        var counter = [Int](repeating: 0, count: outer.count)
        var outputRow = 0
        while true {
            var inputRow = 0
            var padded = false
            for axis in 0..<outer.count {
                let s = sources[axis][counter[axis]]
                if s < 0 { padded = true; break }
                inputRow += s * inputStrides[axis]
            }
            body(padded ? nil : inputRow, outputRow, last)
            outputRow += last.count
            var axis = outer.count - 1
            while axis >= 0 {
                counter[axis] += 1
                if counter[axis] < outer[axis] { break }
                counter[axis] = 0
                axis -= 1
            }
            if axis < 0 { return }
        }
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1, 3) }

    /// Each output element's gradient goes back to the input element it copied (so edge,
    /// reflect and wrap accumulate where an element was copied several times); the gradient of
    /// the constant is the sum over the padding.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let gradient = try step.gradient()
        if gradient.dtype == .float16 {
            let wide = try backward(gradient: gradient.converted(to: .float32), step)
            return try wide.map { try $0?.converted(to: .float16) }
        }
        return try backward(gradient: gradient, step)
    }

    private func backward(gradient g: Tensor, _ step: BackwardStep) throws -> [Tensor?] {
        let shape = try step.inputShape(0)
        let (pads, axes) = try padsAndAxes(step.inputs)
        let plan = try plan(shape: shape, pads: pads, axes: axes)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> [Tensor?] {
            var constantSum = 0.0
            let gx = try Tensor(zeros: g.dtype, shape: shape)
            if g.count > 0 {
                let source = g.unsafeElements(as: T.self)
                let target = gx.unsafeMutableElements(as: T.self)
                forEachRow(plan, try sources(plan)) { inputRow, outputRow, row in
                    for o in 0..<row.count {
                        if let inputRow, row[o] >= 0 {
                            target[inputRow + row[o]] += source[outputRow + o]
                        } else {
                            constantSum += Double(source[outputRow + o])
                        }
                    }
                }
            }
            let wantsValue = step.wants(2) && attributePads == nil
            return [
                step.wants(0) ? gx : nil, nil,
                wantsValue ? try Tensor(scalar: constantSum).converted(to: g.dtype).reshaped(step.inputShapes[2] ?? []) : nil,
            ]
        }
        return try withExtendedLifetime(g) { try withFloatType(g.dtype, "Pad") { try run($0) } }
    }
}

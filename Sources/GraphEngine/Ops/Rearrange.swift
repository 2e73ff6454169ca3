import ONNXModel
import TensorCore

// Ops that rearrange elements by a pattern rather than by index tensors: Tile, DepthToSpace,
// SpaceToDepth and Trilu. Each forward is a strided view (or masked copy) of its input, moved
// by element width whatever the type, so their loops are plain copies.

extension OpRegistry {
    mutating func registerRearrangements() {
        register("Tile") { _ in Tile() }
        register("DepthToSpace") { context in try BlockRearrangement(context, toSpace: true) }
        register("SpaceToDepth") { context in try BlockRearrangement(context, toSpace: false) }
        register("Trilu") { context in Trilu(upper: try context.attribute("upper", default: 1) != 0) }
    }
}

/// `Tile`: the input repeated `repeats[i]` times along each axis `i` (repeats: int64, one per axis, ≥ 0).
struct Tile: Operator {
    /// Tiling as a strided view: axes `[r₀, d₀, r₁, d₁, …]`, the repeat axes with stride 0.
    struct View {
        let shape: [Int]
        let strides: [Int]
        let outputShape: [Int]

        init(_ input: [Int], repeats: [Int]) throws {
            guard repeats.count == input.count else { throw OpError("repeats \(repeats) must have one entry per axis of \(input)") }
            if let bad = repeats.first(where: { $0 < 0 }) { throw OpError("repeats \(repeats) has a negative entry \(bad)") }
            let own = Shape.strides(input)
            shape = input.indices.flatMap { [repeats[$0], input[$0]] }
            strides = input.indices.flatMap { [0, own[$0]] }
            outputShape = try input.indices.map { axis in
                let (extent, overflow) = input[axis].multipliedReportingOverflow(by: repeats[axis])
                guard !overflow else { throw OpError("repeating axis \(axis) of \(input) \(repeats[axis]) times overflows") }
                return extent
            }
        }
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let view = try View(x.shape, repeats: inputs.required(1).integers())
        return [try stridedCopy(x, shape: view.shape, strides: view.strides).reshaped(view.outputShape)]
    }
}

extension Tile: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1) }

    /// Each input element's gradient sums the gradients of its copies: a sum over the repeat axes.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let shape = try step.inputShape(0)
        let view = try View(shape, repeats: step.input(1).integers())
        let layout = try ReductionLayout(view.shape, reduced: view.shape.indices.map { $0 % 2 == 0 }, keepDims: false)
        if g.dtype == .float16 {  // summed in float32, rounded once
            return [try Reduce.Kind.sum.reduce(g.converted(to: .float32).reshaped(view.shape), layout).converted(to: .float16), nil]
        }
        return [try Reduce.Kind.sum.reduce(g.reshaped(view.shape), layout), nil]
    }
}

/// `DepthToSpace` and `SpaceToDepth`: channel blocks to `blocksize × blocksize` spatial tiles
/// and back, `[N, C, H, W]` ⇄ `[N, C/b², H·b, W·b]`.
///
/// `mode` says how a channel splits: DCR (the default) as (row offset i, column offset j,
/// channel c), so channel `(i·b + j)·C/b² + c`; CRD as `c·b² + i·b + j`. DepthToSpace has it
/// since opset 11, SpaceToDepth since 28 (DCR before). Each direction is a permutation, so the
/// gradient is the same view scattered back.
struct BlockRearrangement: Operator {
    let toSpace: Bool
    let blocksize: Int
    let crd: Bool

    init(_ context: OpContext, toSpace: Bool) throws {
        self.toSpace = toSpace
        blocksize = try context.node.requiredAttribute("blocksize")
        guard blocksize >= 1, blocksize < 1 << 31 else { throw context.invalid("blocksize", "must be at least 1, got \(blocksize)") }
        switch try context.attribute("mode", default: "DCR") {
        case "DCR": crd = false
        case "CRD": crd = true
        case let other: throw context.invalid("mode", "must be DCR or CRD, got '\(other)'")
        }
    }

    /// The output as a strided view of the input (`shape`, `strides`) and its own shape.
    func view(_ input: [Int]) throws -> (shape: [Int], strides: [Int], output: [Int]) {
        guard input.count == 4 else { throw OpError("needs an [N, C, H, W] input, got \(input)") }
        let (n, c, h, w, b) = (input[0], input[1], input[2], input[3], blocksize)
        let (hw, chw) = (h * w, c * h * w)
        if toSpace {
            guard c % (b * b) == 0 else { throw OpError("\(c) channels do not split into \(b)×\(b) blocks") }
            let depth = c / (b * b)
            guard h.multipliedReportingOverflow(by: b).overflow == false, w.multipliedReportingOverflow(by: b).overflow == false else {
                throw OpError("a \(h)×\(w) map grown \(b) times overflows")
            }
            // Output [N, C/b², H, i, W, j]: where each element is read from.
            let strides = crd ? [chw, b * b * hw, w, b * hw, 1, hw] : [chw, hw, w, b * depth * hw, 1, depth * hw]
            return ([n, depth, h, b, w, b], strides, [n, depth, h * b, w * b])
        }
        guard h % b == 0, w % b == 0 else { throw OpError("a \(h)×\(w) map does not split into \(b)×\(b) blocks") }
        // Output [N, i, j, C, H/b, W/b] (DCR) or [N, C, i, j, H/b, W/b] (CRD).
        let shape = crd ? [n, c, b, b, h / b, w / b] : [n, b, b, c, h / b, w / b]
        let strides = crd ? [chw, hw, w, 1, b * w, b] : [chw, w, 1, hw, b * w, b]
        return (shape, strides, [n, c * b * b, h / b, w / b])
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let view = try view(x.shape)
        return [try stridedCopy(x, shape: view.shape, strides: view.strides).reshaped(view.output)]
    }
}

extension BlockRearrangement: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let shape = try step.inputShape(0)
        let view = try view(shape)
        let result = try Tensor(uninitialized: g.dtype, shape: shape)  // a permutation writes every element
        try stridedScatter(g.reshaped(view.shape), into: result, strides: view.strides, offset: 0)
        return [result]
    }
}

/// `Trilu`: the upper (`upper` = 1, the default) or lower triangle of the last two axes, from
/// diagonal `k` (the optional second input, default 0; positive above the main diagonal), with
/// the rest zero: upper keeps `j - i ≥ k`, lower `j - i ≤ k`.
struct Trilu: Operator {
    let upper: Bool

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        [try masked(inputs.required(0), k: inputs[1]?.integers().only("k") ?? 0)]
    }

    /// `x` with the elements outside the triangle zeroed.
    func masked(_ x: Tensor, k rawK: Int) throws -> Tensor {
        guard x.rank >= 2 else { throw OpError("needs at least 2 axes, got \(x.shape)") }
        let (rows, columns) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let k = min(max(rawK, -rows - 1), columns + 1)  // beyond these every row is all kept or all zeroed
        let size = x.dtype.byteSize
        let output = try Tensor(zeros: x.dtype, shape: x.shape)
        withExtendedLifetime(x) {
            for matrix in 0..<(rows * columns == 0 ? 0 : x.count / (rows * columns)) {
                for i in 0..<rows {
                    let kept = upper ? max(min(i + k, columns), 0)..<columns : 0..<max(min(i + k + 1, columns), 0)
                    let start = ((matrix * rows + i) * columns + kept.lowerBound) * size
                    (output.storage.base + start).copyMemory(from: x.storage.base + start, byteCount: kept.count * size)
                }
            }
        }
        return output
    }
}

extension Trilu: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1) }

    /// The same triangle of the gradient.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        [try masked(step.gradient(), k: step.inputs.dropFirst().first??.integers().only("k") ?? 0), nil]
    }
}

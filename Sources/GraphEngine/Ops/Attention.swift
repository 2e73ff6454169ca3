import Foundation
import ONNXModel
import TensorCore

// Scaled dot-product attention (ONNX `Attention`, opset 23+): 3-D and 4-D layouts, grouped
// key/value heads, boolean or additive masks, causal and sliding-window masking, a key/value
// cache, soft-capping, and the optional QK output.

extension OpRegistry {
    mutating func registerAttention() {
        register("Attention") { context in try Attention(context) }
    }
}

/// `Attention`: `softmax(Q Kᵀ · scale + bias) V` per head, following the ONNX reference step for step.
struct Attention: Operator {
    let isCausal: Bool
    let qHeads: Int?
    let kvHeads: Int?
    let scale: Float?
    let softcap: Float
    let qkOutputMode: Int
    let leftWindow: Int
    let rightWindow: Int

    init(_ context: OpContext) throws {
        isCausal = try context.attribute("is_causal", default: 0) != 0
        qHeads = try context.attribute("q_num_heads")
        kvHeads = try context.attribute("kv_num_heads")
        scale = try context.attribute("scale")
        softcap = try context.attribute("softcap", default: 0)
        qkOutputMode = try context.attribute("qk_matmul_output_mode", default: 0)
        leftWindow = try context.attribute("left_window_size", default: -1)
        rightWindow = try context.attribute("right_window_size", default: -1)
        guard (0...3).contains(qkOutputMode) else {
            throw context.invalid("qk_matmul_output_mode", "must be 0 to 3, got \(qkOutputMode)")
        }
        guard leftWindow >= -1, rightWindow >= -1 else {
            throw context.invalid("left_window_size", "window sizes must be -1 or non-negative")
        }
    }

    /// The inputs brought to one form: Q, K and V as `[B, H, S, D]`, the cache prepended to K
    /// and V, and Q and K each scaled by √scale (as the ONNX reference does).
    struct Plan {
        let threeD: Bool
        let batch, headsQ, headsKV, queries, keys, depth, depthV, pastLength: Int
        let rootScale: Float
        let q, k, v: Tensor
        let presentK, presentV: Tensor
        let mask: AttentionMask?
        let nonpad: [Int]?

        var area: Int { queries * keys }
        func qOffset(_ b: Int, _ h: Int) -> Int { (b * headsQ + h) * queries * depth }
        func kOffset(_ b: Int, _ h: Int) -> Int { (b * headsKV + h * headsKV / headsQ) * keys * depth }
        func vOffset(_ b: Int, _ h: Int) -> Int { (b * headsKV + h * headsKV / headsQ) * keys * depthV }
        func yOffset(_ b: Int, _ h: Int) -> Int { (b * headsQ + h) * queries * depthV }
        /// Where causal and window frontiers sit: the cache length, or the per-batch valid length.
        func frontier(_ b: Int) -> Int { pastLength > 0 ? pastLength : nonpad.map { $0[b] - queries } ?? 0 }
    }

    func plan(_ inputs: [Tensor?]) throws -> Plan {
        func input(_ index: Int) -> Tensor? { index < inputs.count ? inputs[index] : nil }
        guard let q = input(0), let k = input(1), let v = input(2) else { throw OpError("Attention needs Q, K and V") }
        guard q.dtype == .float32, k.dtype == .float32, v.dtype == .float32 else {
            throw OpError("Attention supports float32 Q, K and V, got \(q.dtype), \(k.dtype), \(v.dtype)")
        }
        let threeD = q.rank == 3
        guard q.rank == 3 || q.rank == 4, k.rank == q.rank, v.rank == q.rank else {
            throw OpError("Q, K and V must all be 3-D or all 4-D, got \(q.shape), \(k.shape), \(v.shape)")
        }
        let batch = q.shape[0]
        let (headsQ, headsKV): (Int, Int)
        if threeD {
            guard let qHeads, let kvHeads, qHeads > 0, kvHeads > 0,
                q.shape[2] % qHeads == 0, k.shape[2] % kvHeads == 0, v.shape[2] % kvHeads == 0
            else { throw OpError("3-D inputs need q_num_heads and kv_num_heads that divide the hidden sizes") }
            (headsQ, headsKV) = (qHeads, kvHeads)
        } else {
            (headsQ, headsKV) = (q.shape[1], k.shape[1])
        }
        let q4 = try Attention.headsFirst(q, heads: headsQ, threeD: threeD)
        var k4 = try Attention.headsFirst(k, heads: headsKV, threeD: threeD)
        var v4 = try Attention.headsFirst(v, heads: headsKV, threeD: threeD)
        guard k4.shape[0] == batch, v4.shape[0] == batch, headsKV > 0, headsQ % headsKV == 0, v4.shape[1] == headsKV,
            k4.shape[3] == q4.shape[3], v4.shape[2] == k4.shape[2]
        else { throw OpError("Q \(q.shape), K \(k.shape) and V \(v.shape) do not fit together") }

        let pastK = input(4)
        let pastV = input(5)
        if (pastK == nil) != (pastV == nil) { throw OpError("past_key and past_value must be given together") }
        if let pastK, let pastV {
            guard pastK.rank == 4, pastV.rank == 4, pastK.shape[0] == batch, pastK.shape[1] == headsKV,
                pastK.shape[3] == k4.shape[3], pastV.shape[2] == pastK.shape[2], pastV.shape[3] == v4.shape[3]
            else { throw OpError("past_key \(pastK.shape) / past_value \(pastV.shape) do not fit K and V") }
            k4 = try Concat(axis: 2).forward(OpInputs([pastK, k4]))[0] ?? k4
            v4 = try Concat(axis: 2).forward(OpInputs([pastV, v4]))[0] ?? v4
        }
        let (queries, keys, depth) = (q4.shape[2], k4.shape[2], q4.shape[3])
        // Clamped to [0, keys]: lengths outside it mean "all" or "none" and must not overflow offsets.
        let nonpad = try input(6)?.integers().map { min(max($0, 0), keys) }
        if let nonpad, nonpad.count != batch { throw OpError("nonpad_kv_seqlen must hold \(batch) values") }
        if nonpad != nil && pastK != nil { throw OpError("nonpad_kv_seqlen cannot be combined with past_key/past_value") }
        let rootScale = Float((Double(scale ?? Float(1 / Double(depth).squareRoot()))).squareRoot())
        return Plan(
            threeD: threeD, batch: batch, headsQ: headsQ, headsKV: headsKV, queries: queries, keys: keys, depth: depth,
            depthV: v4.shape[3], pastLength: pastK?.shape[2] ?? 0, rootScale: rootScale,
            q: try mapElements(q4, as: Float.self) { $0 * rootScale }, k: try mapElements(k4, as: Float.self) { $0 * rootScale },
            v: v4, presentK: k4, presentV: v4,
            mask: try input(3).map { try AttentionMask($0, batch: batch, heads: headsQ, queries: queries, keys: keys) },
            nonpad: nonpad)
    }

    /// Fills `bias` with the additive mask of head (b, h): the attn_mask plus -inf where causal,
    /// window or padding rules exclude a key.
    func fillBias(_ p: Plan, _ b: Int, _ h: Int, _ bias: UnsafeMutablePointer<Float>) {
        let offset = p.frontier(b)
        for i in 0..<p.queries {
            for j in 0..<p.keys {
                var value = p.mask?.bias(b, h, i, j) ?? 0
                let distance = i + offset - j
                if (isCausal && distance < 0) || (leftWindow >= 0 && distance > leftWindow)
                    || (rightWindow >= 0 && -distance > rightWindow) || (p.nonpad.map { j >= $0[b] } ?? false)
                {
                    value = -.infinity
                }
                bias[i * p.keys + j] = value
            }
        }
    }

    /// `scores = softcap(Q Kᵀ)` for head (b, h), before the bias.
    func fillScores(_ p: Plan, _ b: Int, _ h: Int, _ scores: UnsafeMutablePointer<Float>) {
        withExtendedLifetime((p.q, p.k)) {
            Float.gemm(
                transposeA: false, transposeB: true, m: p.queries, n: p.keys, k: p.depth, alpha: 1,
                a: p.q.unsafeElements(as: Float.self).address(at: p.qOffset(b, h), count: p.queries * p.depth), lda: p.depth,
                b: p.k.unsafeElements(as: Float.self).address(at: p.kOffset(b, h), count: p.keys * p.depth), ldb: p.depth, beta: 0,
                c: scores, ldc: p.keys)
        }
        if softcap > 0 { for i in 0..<p.area { scores[i] = softcap * Foundation.tanh(scores[i] / softcap) } }
    }

    /// Turns biased scores into probabilities in place; a row the bias masks entirely attends nothing.
    func normalize(_ p: Plan, _ scores: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>) {
        softmax(scores, scores, outer: p.queries, extent: p.keys, inner: 1)
        for i in 0..<p.queries where (0..<p.keys).allSatisfy({ bias[i * p.keys + $0] == -.infinity }) {
            (scores + i * p.keys).update(repeating: 0, count: p.keys)
        }
    }

    /// Each query element against every key (past ones included), then each query's weights
    /// against the values (as many values per query element as value depth per key depth).
    func multiplyAdds(_ inputs: OpInputs) throws -> Int? {
        let (q, k, v) = (try inputs.required(0), try inputs.required(1), try inputs.required(2))
        guard k.rank >= 2, let depth = k.shape.last, depth > 0, let depthV = v.shape.last else { return nil }
        let keys = k.shape[k.rank - 2] + (inputs[4].map { $0.rank >= 2 ? $0.shape[$0.rank - 2] : 0 } ?? 0)
        let scores = WorkBudget.product(q.count, keys)
        let values = WorkBudget.product(scores, depthV) / depth
        return scores > Int.max - values ? Int.max : scores + values
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let p = try plan(inputs.tensors)
        let y = try Tensor(zeros: .float32, shape: [p.batch, p.headsQ, p.queries, p.depthV])
        let qk = try Tensor(zeros: .float32, shape: [p.batch, p.headsQ, p.queries, p.keys])
        // Scratch through a tensor, so the sizes from the inputs are budgeted (see MemoryBudget).
        let scratch = try Tensor(uninitialized: .float32, shape: [2, max(p.area, 1)])
        let scores = scratch.unsafeMutableElements(as: Float.self).address(count: max(p.area, 1))
        let bias = scratch.unsafeMutableElements(as: Float.self).address(at: max(p.area, 1))
        withExtendedLifetime((p, scratch)) {
            let pv = p.v.unsafeElements(as: Float.self)
            let py = y.unsafeMutableElements(as: Float.self)
            let pqk = qk.unsafeMutableElements(as: Float.self)
            for b in 0..<p.batch {
                for h in 0..<p.headsQ {
                    fillScores(p, b, h, scores)
                    let record = pqk.address(at: (b * p.headsQ + h) * p.area, count: p.area)
                    if qkOutputMode <= 1 { record.update(from: scores, count: p.area) }
                    fillBias(p, b, h, bias)
                    for i in 0..<p.area { scores[i] += bias[i] }
                    if qkOutputMode == 2 { record.update(from: scores, count: p.area) }
                    normalize(p, scores, bias: bias)
                    if qkOutputMode == 3 { record.update(from: scores, count: p.area) }
                    Float.gemm(
                        transposeA: false, transposeB: false, m: p.queries, n: p.depthV, k: p.keys, alpha: 1,
                        a: scores, lda: p.keys, b: pv.address(at: p.vOffset(b, h), count: p.keys * p.depthV), ldb: p.depthV,
                        beta: 0, c: py.address(at: p.yOffset(b, h), count: p.queries * p.depthV), ldc: p.depthV)
                }
            }
        }
        return [p.threeD ? try Attention.headsLast(y) : y, p.presentK, p.presentV, qk]
    }

    /// A 3-D `[B, S, H * D]` tensor as 4-D `[B, H, S, D]`; 4-D tensors pass through.
    static func headsFirst(_ x: Tensor, heads: Int, threeD: Bool) throws -> Tensor {
        guard threeD else { return x }
        let split = try x.reshaped([x.shape[0], x.shape[1], heads, x.shape[2] / heads])
        return try Transpose(perm: [0, 2, 1, 3]).forward(OpInputs([split]))[0] ?? x
    }

    /// `[B, H, S, D]` back to `[B, S, H * D]`.
    static func headsLast(_ x: Tensor) throws -> Tensor {
        let moved = try Transpose(perm: [0, 2, 1, 3]).forward(OpInputs([x]))[0] ?? x
        return try moved.reshaped([x.shape[0], x.shape[2], x.shape[1] * x.shape[3]])
    }
}

extension Attention: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(0, 1, 2, 3, 4, 5, 6) }

    /// With P the attention probabilities (recomputed) and g = ∂Y per head:
    /// `∂V += Pᵀ g`, `∂P = g Vᵀ`, `∂Z = P ⊙ (∂P − rowsum(∂P ⊙ P))`, through the soft cap
    /// `∂S = ∂Z ⊙ (1 − tanh²(S / c))`, then `∂Q = √s ∂S K̃` and `∂K += √s ∂Sᵀ Q̃` (K̃, Q̃ scaled).
    /// Grouped heads add their K/V gradients into the shared head; the cache part of K and V
    /// goes to past_key / past_value.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        if step.outputGradients.dropFirst().contains(where: { $0 != nil }) {
            throw OpError("gradients through present_key, present_value or qk_matmul_output are not supported")
        }
        let p = try plan(step.inputs)
        var g = try step.gradient(0)
        if p.threeD { g = try Attention.headsFirst(g, heads: p.headsQ, threeD: true) }
        let dq = try Tensor(zeros: .float32, shape: p.q.shape)
        let dk = try Tensor(zeros: .float32, shape: p.k.shape)
        let dv = try Tensor(zeros: .float32, shape: p.v.shape)
        let area = max(p.area, 1)
        let scratch = try Tensor(uninitialized: .float32, shape: [4, area])
        let rows = scratch.unsafeMutableElements(as: Float.self)
        let (probabilities, bias) = (rows.address(count: area), rows.address(at: area, count: area))
        let (capped, dScores) = (rows.address(at: 2 * area, count: area), rows.address(at: 3 * area, count: area))
        withExtendedLifetime((p, g, scratch)) {
            let (pq, pk, pv) = (p.q.unsafeElements(as: Float.self), p.k.unsafeElements(as: Float.self), p.v.unsafeElements(as: Float.self))
            let pg = g.unsafeElements(as: Float.self)
            let (pdq, pdk, pdv) = (
                dq.unsafeMutableElements(as: Float.self), dk.unsafeMutableElements(as: Float.self),
                dv.unsafeMutableElements(as: Float.self)
            )
            // Head (b, h)'s blocks of Q (and ∂Q), K, V and Y (and g).
            let (qBlock, kBlock, vBlock, yBlock) = (p.queries * p.depth, p.keys * p.depth, p.keys * p.depthV, p.queries * p.depthV)
            for b in 0..<p.batch {
                for h in 0..<p.headsQ {
                    fillScores(p, b, h, probabilities)
                    if softcap > 0 { capped.update(from: probabilities, count: p.area) }
                    fillBias(p, b, h, bias)
                    for i in 0..<p.area { probabilities[i] += bias[i] }
                    normalize(p, probabilities, bias: bias)
                    // ∂V += Pᵀ g;  ∂P = g Vᵀ.
                    Float.gemm(
                        transposeA: true, transposeB: false, m: p.keys, n: p.depthV, k: p.queries, alpha: 1,
                        a: probabilities, lda: p.keys, b: pg.address(at: p.yOffset(b, h), count: yBlock), ldb: p.depthV, beta: 1,
                        c: pdv.address(at: p.vOffset(b, h), count: vBlock), ldc: p.depthV)
                    Float.gemm(
                        transposeA: false, transposeB: true, m: p.queries, n: p.keys, k: p.depthV, alpha: 1,
                        a: pg.address(at: p.yOffset(b, h), count: yBlock), lda: p.depthV,
                        b: pv.address(at: p.vOffset(b, h), count: vBlock), ldb: p.depthV, beta: 0,
                        c: dScores, ldc: p.keys)
                    for i in 0..<p.queries {
                        let row = i * p.keys
                        var dot: Float = 0
                        for j in 0..<p.keys { dot += dScores[row + j] * probabilities[row + j] }
                        for j in 0..<p.keys {
                            var d = probabilities[row + j] * (dScores[row + j] - dot)
                            if softcap > 0 {
                                let t = capped[row + j] / softcap
                                d *= 1 - t * t
                            }
                            // The √scale of ∂Q = √s ∂S K̃ and ∂K += √s ∂Sᵀ Q̃, taken here once.
                            dScores[row + j] = d * p.rootScale
                        }
                    }
                    // Scores are Q̃ K̃ᵀ: ∂Q̃ = ∂S K̃, ∂K̃ += ∂Sᵀ Q̃.
                    Float.gemm(
                        transposeA: false, transposeB: false, m: p.queries, n: p.depth, k: p.keys, alpha: 1,
                        a: dScores, lda: p.keys, b: pk.address(at: p.kOffset(b, h), count: kBlock), ldb: p.depth, beta: 0,
                        c: pdq.address(at: p.qOffset(b, h), count: qBlock), ldc: p.depth)
                    Float.gemm(
                        transposeA: true, transposeB: false, m: p.keys, n: p.depth, k: p.queries, alpha: 1,
                        a: dScores, lda: p.keys, b: pq.address(at: p.qOffset(b, h), count: qBlock), ldb: p.depth, beta: 1,
                        c: pdk.address(at: p.kOffset(b, h), count: kBlock), ldc: p.depth)
                }
            }
        }
        // Split the cache off, then bring each gradient back to its input's layout.
        func parts(_ gradient: Tensor) throws -> (past: Tensor?, current: Tensor) {
            guard p.pastLength > 0 else { return (nil, gradient) }
            let pieces = try Split(axis: 2, attributeSizes: [p.pastLength, p.keys - p.pastLength], outputCount: 2)
                .forward(OpInputs([gradient]))
            return (pieces[0], pieces[1] ?? gradient)
        }
        let (pastDK, currentDK) = try parts(dk)
        let (pastDV, currentDV) = try parts(dv)
        func layout(_ x: Tensor) throws -> Tensor { p.threeD ? try Attention.headsLast(x) : x }
        return [
            step.wants(0) ? try layout(dq) : nil, step.wants(1) ? try layout(currentDK) : nil,
            step.wants(2) ? try layout(currentDV) : nil, nil, step.wants(4) ? pastDK : nil, step.wants(5) ? pastDV : nil, nil,
        ]
    }
}

/// The `attn_mask` input read as an additive bias, broadcast to `[B, H, Sq, T]`; a mask shorter
/// than `T` is padded with masked positions.
struct AttentionMask {
    let values: [Float]
    let strides: [Int]
    let maskedFrom: Int

    init(_ mask: Tensor, batch: Int, heads: Int, queries: Int, keys: Int) throws {
        guard mask.rank >= 1, mask.rank <= 4, let last = mask.shape.last, last <= keys else {
            throw OpError("attn_mask of shape \(mask.shape) does not fit [\(batch), \(heads), \(queries), \(keys)]")
        }
        let target = [batch, heads, queries, last]
        guard (try? Shape.broadcast(mask.shape, target)) == target else {
            throw OpError("attn_mask of shape \(mask.shape) does not broadcast to [\(batch), \(heads), \(queries), \(keys)]")
        }
        switch mask.dtype {
        case .bool: values = try mask.scalars(as: Bool.self).map { $0 ? 0 : -.infinity }
        case .float32: values = try mask.scalars(as: Float.self)
        default: throw OpError("attn_mask must be bool or float32, got \(mask.dtype)")
        }
        strides = Shape.broadcastStrides(mask.shape, to: target)
        maskedFrom = last
    }

    func bias(_ b: Int, _ h: Int, _ i: Int, _ j: Int) -> Float {
        guard j < maskedFrom else { return -.infinity }
        return values[b * strides[0] + h * strides[1] + i * strides[2] + j * strides[3]]
    }
}

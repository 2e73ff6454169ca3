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

    /// A `[B, H, S, D]` view of Q, K, V or Y: where head (b, h) starts and how far apart its rows are.
    private struct HeadLayout {
        let heads: Int
        let length: Int
        let depth: Int
        let batchStride: Int
        let headStride: Int
        let rowStride: Int

        init(_ shape: [Int], heads: Int, threeD: Bool) {
            self.heads = heads
            if threeD {  // [B, S, H * D]
                length = shape[1]
                depth = shape[2] / heads
                batchStride = shape[1] * shape[2]
                headStride = depth
                rowStride = shape[2]
            } else {  // [B, H, S, D]
                length = shape[2]
                depth = shape[3]
                batchStride = heads * length * depth
                headStride = length * depth
                rowStride = depth
            }
        }

        func offset(_ b: Int, _ h: Int) -> Int { b * batchStride + h * headStride }
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let q = try inputs.required(0)
        var k = try inputs.required(1)
        var v = try inputs.required(2)
        guard q.dtype == .float32, k.dtype == .float32, v.dtype == .float32 else {
            throw OpError("Attention supports float32 Q, K and V, got \(q.dtype), \(k.dtype), \(v.dtype)")
        }
        let threeD = q.rank == 3
        guard (q.rank == 3 || q.rank == 4), k.rank == q.rank, v.rank == q.rank else {
            throw OpError("Q, K and V must all be 3-D or all 4-D, got \(q.shape), \(k.shape), \(v.shape)")
        }
        let batch = q.shape[0]
        let headsQ: Int
        var headsKV: Int
        if threeD {
            guard let qHeads, let kvHeads, qHeads > 0, kvHeads > 0,
                q.shape[2] % qHeads == 0, k.shape[2] % kvHeads == 0, v.shape[2] % kvHeads == 0
            else { throw OpError("3-D inputs need q_num_heads and kv_num_heads that divide the hidden sizes") }
            (headsQ, headsKV) = (qHeads, kvHeads)
        } else {
            (headsQ, headsKV) = (q.shape[1], k.shape[1])
        }
        var layoutK = HeadLayout(k.shape, heads: headsKV, threeD: threeD)
        var layoutV = HeadLayout(v.shape, heads: headsKV, threeD: threeD)
        let layoutQ = HeadLayout(q.shape, heads: headsQ, threeD: threeD)
        guard k.shape[0] == batch, v.shape[0] == batch, layoutK.depth == layoutQ.depth, layoutV.length == layoutK.length,
            headsKV > 0, headsQ % headsKV == 0, (threeD || v.shape[1] == headsKV)
        else { throw OpError("Q \(q.shape), K \(k.shape) and V \(v.shape) do not fit together") }

        // The key/value cache: present = concat(past, new) along the sequence axis.
        var pastLength = 0
        var presentK: Tensor?
        var presentV: Tensor?
        let pastK = inputs[4]
        let pastV = inputs[5]
        if (pastK == nil) != (pastV == nil) { throw OpError("past_key and past_value must be given together") }
        if let pastK, let pastV {
            guard pastK.rank == 4, pastV.rank == 4, pastK.shape[0] == batch, pastK.shape[1] == headsKV,
                pastK.shape[3] == layoutK.depth, pastV.shape[2] == pastK.shape[2], pastV.shape[3] == layoutV.depth
            else { throw OpError("past_key \(pastK.shape) / past_value \(pastV.shape) do not fit K and V") }
            pastLength = pastK.shape[2]
            k = try Concat(axis: 2).forward(OpInputs([pastK, headsFirst(k, layoutK, threeD)]))[0] ?? k
            v = try Concat(axis: 2).forward(OpInputs([pastV, headsFirst(v, layoutV, threeD)]))[0] ?? v
            layoutK = HeadLayout(k.shape, heads: headsKV, threeD: false)
            layoutV = HeadLayout(v.shape, heads: headsKV, threeD: false)
            (presentK, presentV) = (k, v)
        } else if threeD {
            (presentK, presentV) = (try headsFirst(k, layoutK, true), try headsFirst(v, layoutV, true))
        } else {
            (presentK, presentV) = (k, v)
        }
        let queries = layoutQ.length
        let keys = layoutK.length

        // Clamped to [0, keys]: lengths outside it mean "all" or "none" and must not overflow offsets.
        let nonpad = try inputs[6]?.integers().map { min(max($0, 0), layoutK.length) }
        if let nonpad, nonpad.count != batch { throw OpError("nonpad_kv_seqlen must hold \(batch) values") }
        if nonpad != nil && pastK != nil { throw OpError("nonpad_kv_seqlen cannot be combined with past_key/past_value") }
        let mask = try inputs[3].map { try AttentionMask($0, batch: batch, heads: headsQ, queries: queries, keys: keys) }

        let depthV = layoutV.depth
        let y = try Tensor(zeros: .float32, shape: threeD ? [batch, queries, headsQ * depthV] : [batch, headsQ, queries, depthV])
        let layoutY = HeadLayout(y.shape, heads: headsQ, threeD: threeD)
        let qk = try Tensor(zeros: .float32, shape: [batch, headsQ, queries, keys])
        // Q and K are each scaled by sqrt(scale) before the product, as the reference does.
        let rootScale = Float((Double(scale ?? Float(1 / Double(layoutQ.depth).squareRoot()))).squareRoot())
        let scaledQ = try mapElements(q, as: Float.self) { $0 * rootScale }
        let scaledK = try mapElements(k, as: Float.self) { $0 * rootScale }
        let groups = headsQ / headsKV
        let area = queries * keys
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: max(area, 1))
        let bias = UnsafeMutablePointer<Float>.allocate(capacity: max(area, 1))
        defer {
            scores.deallocate()
            bias.deallocate()
        }

        try withExtendedLifetime((scaledQ, scaledK, v, mask)) {
            let pq = scaledQ.storage.base.assumingMemoryBound(to: Float.self)
            let pk = scaledK.storage.base.assumingMemoryBound(to: Float.self)
            let pv = v.storage.base.assumingMemoryBound(to: Float.self)
            let py = y.storage.base.assumingMemoryBound(to: Float.self)
            let pqk = qk.storage.base.assumingMemoryBound(to: Float.self)
            for b in 0..<batch {
                // Where causal and window frontiers sit: past length, or the per-batch non-padded length.
                let offset = pastK != nil ? pastLength : nonpad.map { $0[b] - queries } ?? 0
                for h in 0..<headsQ {
                    let kvHead = h / groups
                    Float.gemm(
                        transposeA: false, transposeB: true, m: queries, n: keys, k: layoutQ.depth, alpha: 1,
                        a: pq + layoutQ.offset(b, h), lda: layoutQ.rowStride, b: pk + layoutK.offset(b, kvHead),
                        ldb: layoutK.rowStride, beta: 0, c: scores, ldc: keys)
                    if softcap > 0 { for i in 0..<area { scores[i] = softcap * Foundation.tanh(scores[i] / softcap) } }
                    let record = pqk + (b * headsQ + h) * area
                    if qkOutputMode <= 1 { record.update(from: scores, count: area) }
                    for i in 0..<queries {
                        for j in 0..<keys {
                            var value = try mask?.bias(b, h, i, j) ?? 0
                            if isCausal && j > i + offset { value = -.infinity }
                            let distance = i + offset - j
                            if (leftWindow >= 0 && distance > leftWindow) || (rightWindow >= 0 && -distance > rightWindow) {
                                value = -.infinity
                            }
                            if let nonpad, j >= nonpad[b] { value = -.infinity }
                            bias[i * keys + j] = value
                        }
                    }
                    for i in 0..<area { scores[i] += bias[i] }
                    if qkOutputMode == 2 { record.update(from: scores, count: area) }
                    softmax(scores, scores, outer: queries, extent: keys, inner: 1)
                    for i in 0..<queries where (0..<keys).allSatisfy({ bias[i * keys + $0] == -.infinity }) {
                        (scores + i * keys).update(repeating: 0, count: keys)  // a fully masked row attends nothing
                    }
                    if qkOutputMode == 3 { record.update(from: scores, count: area) }
                    Float.gemm(
                        transposeA: false, transposeB: false, m: queries, n: depthV, k: keys, alpha: 1,
                        a: scores, lda: keys, b: pv + layoutV.offset(b, kvHead), ldb: layoutV.rowStride,
                        beta: 0, c: py + layoutY.offset(b, h), ldc: layoutY.rowStride)
                }
            }
        }
        return [y, presentK, presentV, qk]
    }

    /// A 3-D `[B, S, H * D]` tensor as 4-D `[B, H, S, D]`; 4-D tensors pass through.
    private func headsFirst(_ x: Tensor, _ layout: HeadLayout, _ threeD: Bool) throws -> Tensor {
        guard threeD else { return x }
        let split = try x.reshaped([x.shape[0], x.shape[1], layout.heads, layout.depth])
        return try Transpose(perm: [0, 2, 1, 3]).forward(OpInputs([split]))[0] ?? x
    }
}

/// The `attn_mask` input read as an additive bias, broadcast to `[B, H, Sq, T]`; a mask shorter
/// than `T` is padded with masked positions.
private struct AttentionMask {
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

    func bias(_ b: Int, _ h: Int, _ i: Int, _ j: Int) throws -> Float {
        guard j < maskedFrom else { return -.infinity }
        return values[b * strides[0] + h * strides[1] + i * strides[2] + j * strides[3]]
    }
}

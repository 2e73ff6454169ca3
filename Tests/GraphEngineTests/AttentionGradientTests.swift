import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Attention's backward rule against finite differences. The op computes in float32 only, so
/// these use GradientCheck's float32 step and tolerance.
@Suite struct AttentionGradientTests {
    func f32(_ shape: [Int], _ seed: UInt64) throws -> Tensor { try randomTensor(shape, seed: seed, dtype: .float32) }

    @Test func fourDimensionalWithGroupedHeadsMaskAndCausality() throws {
        let mask = try Tensor(shape: [3, 4], scalars: [Float](arrayLiteral: 0, -1, 0.5, 0, 0, 0, -0.5, 0, 1, 0, 0, 0))
        let check = GradientCheck(
            op: "Attention", attributes: ["is_causal": .int(1)],
            inputs: [try f32([1, 4, 3, 2], 50), try f32([1, 2, 4, 2], 51), try f32([1, 2, 4, 3], 52)],
            constants: [(3, mask)], opset: 23)
        #expect(try check.run() == [])
    }

    @Test func threeDimensionalWithSoftcapScaleAndCache() throws {
        let check = GradientCheck(
            op: "Attention",
            attributes: ["q_num_heads": .int(2), "kv_num_heads": .int(1), "softcap": .float(2), "scale": .float(0.7)],
            inputs: [try f32([2, 3, 4], 53), try f32([2, 2, 2], 54), try f32([2, 2, 3], 55), try f32([2, 1, 1, 2], 56), try f32([2, 1, 1, 3], 57)],
            opset: 23)
        // Inputs 3 (mask) is omitted: feed past_key/past_value at positions 4 and 5 by name order.
        #expect(try check.withPositions([0, 1, 2, 4, 5]).run() == [])
    }
}

extension GradientCheck {
    /// The same check with the differentiated inputs placed at `positions` of the node's input list (others omitted).
    func withPositions(_ positions: [Int]) -> GradientCheck {
        var copy = self
        copy.positions = positions
        return copy
    }
}

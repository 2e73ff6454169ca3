import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Finite-difference checks of the indexing and rearrangement ops' backward rules (float64, or
/// float32 for the specialized kernels; tolerances as GradientCheck states). Indices repeat and
/// count from the end on purpose: repeated gathers accumulate, repeated scatters keep the last.
@Suite struct IndexingGradientTests {
    let x: Tensor

    init() throws { x = try randomTensor([2, 3, 4], seed: 70) }

    @Test(arguments: [DType.float64, .float32])
    func tile(_ dtype: DType) throws {
        let check = GradientCheck(op: "Tile", inputs: [try x.converted(to: dtype)], constants: [(1, try int64s([2, 1, 3]))], opset: 13)
        #expect(try check.run() == [])
    }

    @Test(arguments: [DType.float64, .float32])
    func gatherElements(_ dtype: DType) throws {
        let indices = try Tensor(shape: [2, 2, 4], scalars: [0, 2, -1, 1, 2, 2, 0, 0, 1, -3, 2, 1, 0, 0, 0, 2].map { Int64($0) })
        let check = GradientCheck(
            op: "GatherElements", attributes: ["axis": .int(1)], inputs: [try x.converted(to: dtype)], constants: [(1, indices)], opset: 13)
        #expect(try check.run() == [])
    }

    @Test func gatherNDWithAndWithoutBatchDims() throws {
        let tuples = try Tensor(shape: [3, 2], scalars: [1, 2, 0, -1, 1, 2].map { Int64($0) })
        #expect(try GradientCheck(op: "GatherND", inputs: [x], constants: [(1, tuples)], opset: 13).run() == [])
        let batched = try Tensor(shape: [2, 2, 1], scalars: [2, 2, 0, 1].map { Int64($0) })
        let check = GradientCheck(op: "GatherND", attributes: ["batch_dims": .int(1)], inputs: [x], constants: [(1, batched)], opset: 13)
        #expect(try check.run() == [])
    }

    /// With respect to data and updates; row 0 writes column 0 twice and row 1 column 2, so
    /// under none the later write wins (and alone receives the gradient).
    @Test(arguments: ["none", "add"])
    func scatterElements(_ reduction: String) throws {
        let data = try randomTensor([3, 4], seed: 71)
        let indices = try Tensor(shape: [2, 3], scalars: [0, 1, -4, 2, 1, 2].map { Int64($0) })
        let check = GradientCheck(
            op: "ScatterElements", attributes: ["axis": .int(1), "reduction": .string(reduction)],
            inputs: [data, try randomTensor([2, 3], seed: 72)], constants: [(1, indices)], opset: 18)
        #expect(try check.run() == [])
    }

    @Test(arguments: ["none", "add"])
    func scatterND(_ reduction: String) throws {
        // Rows 2, 0 and 2 again of a [3, 2, 4] tensor: row 2 is written twice.
        let indices = try Tensor(shape: [3, 1], scalars: [2, 0, -1].map { Int64($0) })
        let check = GradientCheck(
            op: "ScatterND", attributes: ["reduction": .string(reduction)],
            inputs: [try randomTensor([3, 2, 4], seed: 73), try randomTensor([3, 2, 4], seed: 74)], constants: [(1, indices)], opset: 18)
        #expect(try check.run() == [])
    }

    @Test func scatterNDElementsInFloat32() throws {
        let indices = try Tensor(shape: [2, 3], scalars: [1, 0, 3, 0, 2, 1].map { Int64($0) })
        let check = GradientCheck(
            op: "ScatterND", inputs: [try x.converted(to: .float32), try randomTensor([2], seed: 75, dtype: .float32)],
            constants: [(1, indices)], opset: 13)
        #expect(try check.run() == [])
    }

    @Test(arguments: [true, false])
    func trilu(_ upper: Bool) throws {
        for k in [-1, 0, 2] {
            let check = GradientCheck(
                op: "Trilu", attributes: ["upper": .int(upper ? 1 : 0)], inputs: [x], constants: [(1, Tensor(scalar: Int64(k)))], opset: 14)
            #expect(try check.run() == [])
        }
        #expect(try GradientCheck(op: "Trilu", attributes: ["upper": .int(upper ? 1 : 0)], inputs: [x], opset: 14).run() == [])
    }

    @Test(arguments: ["DCR", "CRD"])
    func depthToSpaceAndBack(_ mode: String) throws {
        let deep = try randomTensor([2, 8, 2, 3], seed: 76)
        let toSpace = GradientCheck(op: "DepthToSpace", attributes: ["blocksize": .int(2), "mode": .string(mode)], inputs: [deep], opset: 13)
        #expect(try toSpace.run() == [])
        let wide = try randomTensor([1, 2, 4, 6], seed: 77, dtype: .float32)
        let toDepth = GradientCheck(op: "SpaceToDepth", attributes: ["blocksize": .int(2), "mode": .string(mode)], inputs: [wide], opset: 13)
        #expect(try toDepth.run() == [])
    }
}

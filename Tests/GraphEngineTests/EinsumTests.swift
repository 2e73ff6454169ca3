import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Einsum: finite-difference checks of the backward rule for each operand (float64, tolerance as
/// stated in GradientCheck), values against a direct sum over all subscripts, and equation errors.
@Suite struct EinsumTests {
    /// Runs one Einsum node.
    func einsum(_ equation: String, _ operands: [Tensor]) throws -> Tensor {
        let names = operands.indices.map { "x\($0)" }
        let node = Node(name: "einsum", opType: "Einsum", inputs: names, outputs: ["y"], attributes: ["equation": .string(equation)])
        let model = Model(
            opsets: ["": 12],
            graph: Graph(nodes: [node], inputs: zip(names, operands).map { ValueInfo(name: $0, elementType: $1.dtype) },
                         outputs: [ValueInfo(name: "y", elementType: nil)]))
        return try #require(try Executor(model: model).run(Dictionary(uniqueKeysWithValues: zip(names, operands)))["y"])
    }

    static let gradientCases: [(String, [[Int]])] = [
        ("bhqd,bhkd->bhqk", [[2, 2, 3, 4], [2, 2, 5, 4]]),
        ("bchw,bkc->bkhw", [[2, 3, 2, 2], [2, 4, 3]]),
        ("ij,jk", [[2, 3], [3, 4]]),
        ("...ij,...jk->...ik", [[2, 1, 2, 3], [3, 3, 2]]),
        ("ii->i", [[3, 3]]),
        ("bii,bj->bij", [[2, 3, 3], [2, 4]]),
        ("ij,k->i", [[2, 3], [4]]),
        ("ij,jk,kl->il", [[2, 3], [3, 4], [4, 2]]),
        ("i,j->ij", [[3], [2]]),
        ("ijk->", [[2, 3, 2]]),
        ("ij,ij->ij", [[2, 3], [1, 3]]),
    ]

    @Test(arguments: gradientCases)
    func gradientForEveryOperand(_ test: (String, [[Int]])) throws {
        let operands = try test.1.enumerated().map { try randomTensor($0.element, seed: UInt64(80 + $0.offset)) }
        let check = GradientCheck(op: "Einsum", attributes: ["equation": .string(test.0)], inputs: operands, opset: 12)
        #expect(try check.run() == [], "\(test.0)")
    }

    /// The same sums written out: `Σ over all subscripts of Π operands`, for small operands.
    @Test func matchesTheSumWrittenOut() throws {
        let a = try randomTensor([2, 3, 3], seed: 90)
        let b = try randomTensor([3, 4], seed: 91)
        let c = try randomTensor([4], seed: 92)
        let (va, vb, vc) = (try a.doubles(), try b.doubles(), try c.doubles())
        // "bii,ij,j->bj": y[b, j] = Σ_i a[b, i, i] b[i, j] c[j].
        var expected = [Double](repeating: 0, count: 8)
        for batch in 0..<2 {
            for j in 0..<4 {
                for i in 0..<3 { expected[batch * 4 + j] += va[(batch * 3 + i) * 3 + i] * vb[i * 4 + j] * vc[j] }
            }
        }
        let y = try einsum("bii,ij,j->bj", [a, b, c])
        #expect(y.shape == [2, 4])
        #expect(try TensorComparison(y, try Tensor(shape: [2, 4], scalars: expected), absolute: 1e-12, relative: 1e-12).mismatches == 0)
    }

    @Test func integersAndImplicitOrder() throws {
        let a = try Tensor(shape: [2, 2], scalars: [Int64(1) << 40, 2, 3, 4])
        let b = try Tensor(shape: [2], scalars: [Int64(3), -1])
        #expect(try einsum("ij,j->i", [a, b]).scalars(as: Int64.self) == [3 << 40 - 2, 5])
        // Implicit output: subscripts used once, in ASCII order (uppercase first).
        let x = try randomTensor([2, 3], seed: 93)
        #expect(try einsum("bA", [x]).shape == [3, 2])
        #expect(try einsum("Ba", [x]).shape == [2, 3])
        let bytes = try Tensor(shape: [3], scalars: [UInt8(200), 100, 7])
        #expect(try einsum("i,i", [bytes, bytes]).scalars(as: UInt8.self) == [UInt8(truncatingIfNeeded: 40000 + 10000 + 49)])
    }

    @Test func badEquationsGiveErrorsNamingTheNode() throws {
        let x = try randomTensor([2, 3], seed: 94)
        #expect(errorText { try einsum("ij,jk", [x]) }.contains("2 operands"))
        #expect(errorText { try einsum("ijk", [x]) }.contains("rank 2 has 3 subscripts"))
        #expect(errorText { try einsum("ij,ij->i", [x, try randomTensor([3, 3], seed: 95)]) }.contains("extents 2 and 3"))
        #expect(errorText { try einsum("ij->k", [x]) }.contains("appears in no input"))
        #expect(errorText { try einsum("ij->ii", [x]) }.contains("repeats"))
        #expect(errorText { try einsum("i1", [x]) }.contains("invalid subscript"))
        #expect(errorText { try einsum("...i->i", [try randomTensor([2, 2, 3], seed: 96)]) }.contains("no '...'"))
        #expect(errorText { try einsum("ii", [x]) }.contains("node 'einsum'"))
    }
}

import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Every float32 product path, forward and backward, against the same graph in float64: batched
/// and broadcast MatMul (whose backward reads the transposed operands in place), a shared 2-D
/// right operand that is not an initializer, Gemm with both transposes and both factors, and Conv
/// through im2col and 1×1. On the AVX2 and AVX-512 levels these run on our kernels (operands
/// row-major, transposed, or packed per call), on the portable level on the BLAS; float64 always
/// runs on the BLAS, so the comparison also checks our kernels against it.
@Suite struct ProductPathTests {
    /// `nodes` run forward and backward (a seeded upstream gradient on `y`) on `inputs`, in float32
    /// and in float64: the output and every input's gradient agree within 1e-5 of the largest
    /// float64 value. The sums are at most a few hundred float32 terms of magnitude ≤ 1: a few
    /// roundings of 6e-8 each relative to the sums' size; a misplaced operand, transpose or batch
    /// is off by the values themselves.
    func compare(_ nodes: [Node], _ inputs: [(String, [Int])], attributesFor name: String = "") throws {
        func run(_ dtype: DType) throws -> [[Double]] {
            let feeds = Dictionary(
                uniqueKeysWithValues: try inputs.enumerated().map { index, input in
                    (input.0, try randomTensor(input.1, seed: UInt64(70 + index), dtype: dtype))
                })
            let executor = try Executor(model: makeModel(
                nodes, inputs: inputs.map { ValueInfo(name: $0.0, elementType: dtype, shape: $0.1.map { .fixed($0) }) },
                outputs: ["y"]))
            let y = try #require(try executor.run(feeds)["y"])
            let g = try randomTensor(y.shape, seed: 90, dtype: dtype)
            let result = try executor.gradients(feeds, seed: { _ in g }, wrt: inputs.map(\.0))
            return try ([y] + inputs.map { try #require(result.gradients[$0.0]) }).map {
                try $0.converted(to: .float64).scalars(as: Double.self)
            }
        }
        let single = try run(.float32)
        let double = try run(.float64)
        for (index, (ours, exact)) in zip(single, double).enumerated() {
            let largest = exact.map(abs).max() ?? 0
            let name = index == 0 ? "y" : "∂" + inputs[index - 1].0
            #expect(ours.count == exact.count && largest > 0, "\(name)")
            #expect(zip(ours, exact).allSatisfy { abs($0 - $1) <= 1e-5 * largest }, "\(name)")
        }
    }

    @Test(arguments: [
        ([2, 3, 5, 7], [2, 3, 7, 4]), ([2, 1, 5, 7], [3, 7, 4]), ([2, 13, 30], [30, 20]), ([3, 40, 17], [3, 17, 33]),
    ])
    func matMul(_ shapes: ([Int], [Int])) throws {
        try compare([Node(opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])], [("a", shapes.0), ("b", shapes.1)])
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemm(_ transposes: (Bool, Bool)) throws {
        let (transA, transB) = transposes
        let node = Node(
            opType: "Gemm", inputs: ["a", "b", "c"], outputs: ["y"],
            attributes: ["alpha": .float(0.5), "beta": .float(2), "transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0)])
        try compare([node], [("a", transA ? [30, 19] : [19, 30]), ("b", transB ? [21, 30] : [30, 21]), ("c", [21])])
    }

    @Test func convThroughIm2colAndPointwise() throws {
        let strided = Node(
            opType: "Conv", inputs: ["x", "w"], outputs: ["h"],
            attributes: ["strides": .ints([2, 2]), "pads": .ints([1, 0, 1, 1])])
        let pointwise = Node(opType: "Conv", inputs: ["h", "v"], outputs: ["y"])
        try compare([strided, pointwise], [("x", [2, 3, 11, 10]), ("w", [9, 3, 3, 3]), ("v", [5, 9, 1, 1])])
    }
}

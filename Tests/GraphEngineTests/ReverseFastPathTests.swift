import Foundation
import ONNXModel
import TensorCore
import TestSupport
import Testing

@testable import GraphEngine

/// The reverse pass's shortcuts against the plain computation: products that leave out a
/// gradient's zero rows, LayerNormalization and Softmax rules that skip zero-gradient rows and
/// reuse the forward's statistics, and chains that run fused in the reverse pass. Where the
/// arithmetic is the same the results must be the same bits; elsewhere each bound is stated.
@Suite struct ReverseFastPathTests {
    /// Whether products run on our kernels (the AVX2 and AVX-512 levels), where each element is
    /// one fma chain whatever rows are computed with it.
    static var ownProducts: Bool { Kernels.current.gemm != nil }

    /// `count` float32 values in ±[0.1, 1].
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var random = SeededRandom(seed: seed)
        return random.awayFromZero(count).map { Float($0) }
    }

    /// Equal bits, or both NaN.
    static func same(_ a: Float, _ b: Float) -> Bool { a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN) }

    struct ProductCase: Sendable, CustomTestStringConvertible {
        var gradient: GradientOperand
        var transposed: Bool
        var m, n, k: Int
        var alpha: Float
        /// Rows of the gradient operand that hold values; all others are zero.
        var live: [Int]
        var testDescription: String { "\(gradient) transposed:\(transposed) \(m)×\(n)×\(k) α=\(alpha) live:\(live.count)" }
    }

    static let productCases: [ProductCase] = [
        ProductCase(gradient: .left, transposed: false, m: 37, n: 19, k: 23, alpha: 1, live: [0]),
        ProductCase(gradient: .left, transposed: true, m: 37, n: 19, k: 23, alpha: 1, live: [0, 5, 17, 36]),
        ProductCase(gradient: .left, transposed: true, m: 64, n: 48, k: 600, alpha: -0.5, live: Array(0..<32)),
        ProductCase(gradient: .left, transposed: false, m: 9, n: 70, k: 40, alpha: 1, live: []),
        ProductCase(gradient: .right, transposed: true, m: 19, n: 21, k: 37, alpha: 1, live: [0]),
        ProductCase(gradient: .right, transposed: false, m: 19, n: 21, k: 37, alpha: 1, live: [3, 4, 30]),
        ProductCase(gradient: .right, transposed: true, m: 48, n: 64, k: 600, alpha: -0.5, live: Array(stride(from: 0, to: 600, by: 3))),
        ProductCase(gradient: .right, transposed: false, m: 5, n: 7, k: 12, alpha: 2, live: []),
    ]

    /// The operands of a case: `a` and `b` as stored, with their row strides.
    static func operands(_ c: ProductCase) -> (a: [Float], lda: Int, b: [Float], ldb: Int) {
        let live = Set(c.live)
        func zeroed(_ values: [Float], rows: Int, columns: Int) -> [Float] {
            var values = values
            for row in 0..<rows where !live.contains(row) { for j in 0..<columns { values[row * columns + j] = 0 } }
            return values
        }
        switch c.gradient {
        case .left:
            // g (m × k) times op(B): B is n × k when transposed, else k × n.
            let a = zeroed(values(c.m * c.k, seed: 1), rows: c.m, columns: c.k)
            return (a, c.k, values(c.k * c.n, seed: 2), c.transposed ? c.k : c.n)
        case .right:
            // op(A) (A is k × m when transposed, else m × k) times g (k × n).
            let b = zeroed(values(c.k * c.n, seed: 3), rows: c.k, columns: c.n)
            return (values(c.m * c.k, seed: 4), c.transposed ? c.m : c.k, b, c.n)
        }
    }

    @Test(arguments: productCases)
    func productsWithoutZeroRowsMatchTheDenseProduct(_ c: ProductCase) throws {
        let (a, lda, b, ldb) = Self.operands(c)
        let (transposeA, transposeB) = c.gradient == .left ? (false, c.transposed) : (c.transposed, false)
        var dense = [Float](repeating: .nan, count: c.m * c.n)
        var sparse = [Float](repeating: .nan, count: c.m * c.n)
        try a.withUnsafeBufferPointer { a in
            try b.withUnsafeBufferPointer { b in
                dense.withUnsafeMutableBufferPointer { out in
                    Float.gemm(
                        transposeA: transposeA, transposeB: transposeB, m: c.m, n: c.n, k: c.k, alpha: c.alpha, a: a.baseAddress!,
                        lda: lda, b: b.baseAddress!, ldb: ldb, beta: 0, c: out.baseAddress!, ldc: c.n)
                }
                let skipped = try sparse.withUnsafeMutableBufferPointer { out in
                    try gemmSkippingZeroRows(
                        c.gradient, transposeA: transposeA, transposeB: transposeB, m: c.m, n: c.n, k: c.k, alpha: c.alpha,
                        a: a.baseAddress!, lda: lda, b: b.baseAddress!, ldb: ldb, c: out.baseAddress!, ldc: c.n, threaded: true)
                }
                #expect(skipped)
            }
        }
        if Self.ownProducts {
            // One fma chain per element from +0, which a zero term or a zero row does not change.
            #expect(zip(dense, sparse).allSatisfy { Self.same($0, $1) })
            return
        }
        // The BLAS may block the shorter product differently: each of the two sums is within
        // k·2⁻²⁴·Σ|aᵢₚ bₚⱼ| of the exact one (every |value| here is at most 1).
        let bound = 2 * Double(c.k) * 0x1p-24 * Double(c.k) * Double(abs(c.alpha))
        #expect(zip(dense, sparse).allSatisfy { abs(Double($0) - Double($1)) <= bound })
        for row in 0..<c.m where c.gradient == .left && !c.live.contains(row) {
            #expect(sparse[row * c.n..<(row + 1) * c.n].allSatisfy { $0 == 0 })
        }
    }

    @Test func nonFiniteOperandsOrFewZeroRowsKeepTheDenseProduct() throws {
        let (m, n, k) = (8, 5, 6)
        var g = Self.values(m * k, seed: 5)
        for i in k..<m * k { g[i] = 0 }  // one live row of eight
        var weights = Self.values(k * n, seed: 6)
        weights[7] = .infinity
        var out = [Float](repeating: 0, count: m * n)
        // g · B with an infinity in B: the dense product gives NaN in the zero rows, so it runs.
        let left = try g.withUnsafeBufferPointer { a in
            try weights.withUnsafeBufferPointer { b in
                try out.withUnsafeMutableBufferPointer { c in
                    try gemmSkippingZeroRows(
                        .left, transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a.baseAddress!, lda: k,
                        b: b.baseAddress!, ldb: n, c: c.baseAddress!, ldc: n, threaded: false)
                }
            }
        }
        #expect(!left)
        // op(A) · g with g as the right operand (8 × 6, read as depth × columns): a NaN in a
        // column of op(A) that meets a zero row of g keeps the dense product; in a live one it does not.
        let right: (Int) throws -> Bool = { nanAt in
            var a = Self.values(n * m, seed: 7)
            a[nanAt] = .nan
            var c = [Float](repeating: 0, count: n * k)
            return try a.withUnsafeBufferPointer { a in
                try g.withUnsafeBufferPointer { b in
                    try c.withUnsafeMutableBufferPointer { c in
                        // A stored n × m (5 × 8), depth m = 8 rows of g, g's row 0 alone live.
                        try gemmSkippingZeroRows(
                            .right, transposeA: false, transposeB: false, m: n, n: k, k: m, alpha: 1, a: a.baseAddress!, lda: m,
                            b: b.baseAddress!, ldb: k, c: c.baseAddress!, ldc: k, threaded: false)
                    }
                }
            }
        }
        #expect(try !right(3))  // column 3 of A meets g's zero row 3
        #expect(try right(8))  // row 1, column 0: meets g's live row 0
        // Five live rows of eight: more than half, the dense product runs; four are few enough.
        let live: (Int) -> [Int]? = { count in
            let column = (0..<8).map { Float($0 < count ? 1 : 0) }
            return column.withUnsafeBufferPointer { liveRows($0.baseAddress!, rows: 8, columns: 1, stride: 1) }
        }
        #expect(live(5) == nil)
        #expect(live(4) == [0, 1, 2, 3])
        let zeros: [Float] = [0, -0, 0, 3, -0, 0, 0, 0, 0, 1]
        #expect(zeros.withUnsafeBufferPointer { liveRows($0.baseAddress!, rows: 5, columns: 2, stride: 2) } == [1, 4])
    }

    @Test func fewGradientRowsTimesCachedTransposedWeightsMatchTheDenseProduct() throws {
        // g (40 × 30) with rows 0, 13 and 27 live, as a class-token readout's gradient reaches a
        // transformer's last linear layers; W (50 × 30) constant: ∂A = g Wᵀ.
        let values = Self.values(40 * 30, seed: 72)
        let g = try Tensor(
            shape: [40, 30], scalars: values.enumerated().map { [0, 13, 27].contains($0.offset / 30) ? Double($0.element) : 0 }
        ).converted(to: .float32)
        var weights = try randomTensor([50, 30], seed: 73, dtype: .float32)
        let op = MatMul()
        let fast = try op.fewRowsTimesTransposedWeights(g, weights, isConstant: true)
        guard Self.ownProducts else {
            #expect(fast == nil)  // the BLAS multiplies Wᵀ in place
            return
        }
        let dense = try batchedProduct(g, weights, transposeB: true).scalars(as: Float.self)
        // Packed once, then read from the cache: the same bits both times, and the dense product's.
        for result in [fast, try op.fewRowsTimesTransposedWeights(g, weights, isConstant: true)] {
            let ours = try #require(result).scalars(as: Float.self)
            #expect(ours.map(\.bitPattern) == dense.map(\.bitPattern))
        }
        // Weights that may change between runs are not kept; a dense gradient, or a non-finite
        // weight (the dense product gives NaN in the zero rows), keeps the dense product.
        #expect(try MatMul().fewRowsTimesTransposedWeights(g, weights, isConstant: false) == nil)
        #expect(try op.fewRowsTimesTransposedWeights(try randomTensor([40, 30], seed: 74, dtype: .float32), weights, isConstant: true) == nil)
        var scalars = try weights.scalars(as: Float.self)
        scalars[31] = .infinity
        weights = try Tensor(shape: [50, 30], scalars: scalars.map(Double.init)).converted(to: .float32)
        #expect(try MatMul().fewRowsTimesTransposedWeights(g, weights, isConstant: true) == nil)
    }

    // MARK: - Fused chains in the reverse pass

    /// `x → MatMul(W) → Add(b) → h → GELU as five nodes → MatMul(W2) → Add(b2) → y`.
    func mlp(_ dtype: DType) throws -> Executor {
        func constant(_ name: String, _ value: Double) throws -> Node {
            Node(
                opType: "Constant", inputs: [], outputs: [name],
                attributes: ["value": .tensor(try Tensor(shape: [], scalars: [value]).converted(to: dtype))])
        }
        return try Executor(model: makeModel(
            [
                Node(opType: "MatMul", inputs: ["x", "w"], outputs: ["p"]),
                Node(opType: "Add", inputs: ["b", "p"], outputs: ["h"]),
                try constant("root2", Double(Float(2).squareRoot())), try constant("one", 1), try constant("half", 0.5),
                Node(opType: "Div", inputs: ["h", "root2"], outputs: ["d"]),
                Node(opType: "Erf", inputs: ["d"], outputs: ["e"]),
                Node(opType: "Add", inputs: ["e", "one"], outputs: ["a"]),
                Node(opType: "Mul", inputs: ["h", "a"], outputs: ["m"]),
                Node(opType: "Mul", inputs: ["m", "half"], outputs: ["q"]),
                Node(opType: "MatMul", inputs: ["q", "w2"], outputs: ["r"]),
                Node(opType: "Add", inputs: ["r", "b2"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", elementType: dtype, shape: [.symbolic("N"), .fixed(13), .fixed(30)])], outputs: ["y"],
            initializers: [
                "w": try randomTensor([30, 40], seed: 40, dtype: dtype), "b": try randomTensor([40], seed: 41, dtype: dtype),
                "w2": try randomTensor([40, 30], seed: 42, dtype: dtype), "b2": try randomTensor([30], seed: 43, dtype: dtype),
            ]))
    }

    /// A seed gradient on `y` (`[N, 13, 30]`) that only token 0 of each sample gets, as a class-token readout passes.
    func classTokenSeed(_ shape: [Int], dtype: DType) throws -> Tensor {
        let values = Self.values(shape.reduce(1, *), seed: 44)
        let perToken = shape[2]
        let perSample = shape[1] * perToken
        let masked = values.enumerated().map { $0.offset % perSample < perToken ? Double($0.element) : 0 }
        return try Tensor(shape: shape, scalars: masked).converted(to: dtype)
    }

    @Test(arguments: [DType.float32, .float64])
    func fusedChainsInTheReversePassMatchTheNodesApart(_ dtype: DType) throws {
        let executor = try mlp(dtype)
        let x = try randomTensor([2, 13, 30], seed: 45, dtype: dtype)
        let seed = try classTokenSeed([2, 13, 30], dtype: dtype)
        // With `x` alone both chains run fused and are differentiated as one step each; asking for
        // the intermediates `p` and `d` too keeps every node apart.
        let fused = try #require(try executor.gradients(["x": x], seed: { _ in seed }, wrt: ["x"]).gradients["x"])
        let apart = try #require(try executor.gradients(["x": x], seed: { _ in seed }, wrt: ["x", "p", "d"]).gradients["x"])
        // The backward steps run fused: both linear layers, and the GELU chain where the fusion
        // matches it (its constants must be float32 scalars; float64 runs the five nodes). Asking
        // for `p` and `d` leaves the second linear layer alone fused.
        func fusedSteps(_ wrt: [String]) throws -> [String: Int] {
            let steps = try executor.profileGradients(["x": x], seed: { _ in seed }, wrt: wrt).backward
            return steps.reduce(into: [:]) { counts, step in
                if ["MatMul+Add", "Gelu"].contains(step.opType) { counts[step.opType, default: 0] += 1 }
            }
        }
        #expect(try fusedSteps(["x"]) == (dtype == .float32 ? ["MatMul+Add": 2, "Gelu": 1] : ["MatMul+Add": 2]))
        #expect(try fusedSteps(["x", "p", "d"]) == ["MatMul+Add": 1])
        // GELU's derivative in one formula against the five rules' chain: a few roundings apart
        // per element (float32: ~1e-7 relative, float64: ~1e-16), then 40-term products. 1e-5
        // (float32) and 1e-12 (float64) of the largest gradient leave ample room; a wrong term
        // of the derivative is off by a fraction of the values themselves.
        let (ours, reference) = (try fused.doubles(), try apart.doubles())
        let largest = reference.map(abs).max() ?? 0
        let tolerance = dtype == .float32 ? 1e-5 : 1e-12
        #expect(largest > 0 && zip(ours, reference).allSatisfy { abs($0 - $1) <= tolerance * largest })
    }

    /// Counts calls of a backward override (the reverse pass runs its rules one at a time).
    final class Calls: @unchecked Sendable { var count = 0 }

    @Test func overridesReachTheNodesOfFusedChains() throws {
        // An override of a node's rule (Erf's, inside the GELU chain) keeps its chain apart, so the
        // override runs; the gradient is the nodes' own when the override changes nothing.
        let executor = try mlp(.float32)
        let x = try randomTensor([2, 13, 30], seed: 45, dtype: .float32)
        let seed = try classTokenSeed([2, 13, 30], dtype: .float32)
        let calls = Calls()
        let overridden = try #require(
            try executor.gradients(
                ["x": x], seed: { _ in seed }, wrt: ["x"],
                overrides: ["Erf": { _, standard in
                    calls.count += 1
                    return try standard()
                }]
            ).gradients["x"])
        #expect(calls.count == 1)
        let apart = try #require(try executor.gradients(["x": x], seed: { _ in seed }, wrt: ["x", "d"]).gradients["x"])
        #expect(try overridden.scalars(as: Float.self).map(\.bitPattern) == apart.scalars(as: Float.self).map(\.bitPattern))
    }

    @Test func fusedLinearLayerBackwardIsTheProductRuleBitForBit() throws {
        let executor = try Executor(model: makeModel(
            [Node(opType: "MatMul", inputs: ["x", "w"], outputs: ["p"]), Node(opType: "Add", inputs: ["p", "b"], outputs: ["y"])],
            inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(13), .fixed(30)])], outputs: ["y"],
            initializers: [
                "w": try randomTensor([30, 40], seed: 46, dtype: .float32), "b": try randomTensor([40], seed: 47, dtype: .float32),
            ]))
        let x = try randomTensor([2, 13, 30], seed: 48, dtype: .float32)
        for seed in [try classTokenSeed([2, 13, 40], dtype: .float32), try randomTensor([2, 13, 40], seed: 49, dtype: .float32)] {
            let fused = try #require(try executor.gradients(["x": x], seed: { _ in seed }, wrt: ["x"]).gradients["x"])
            let apart = try #require(try executor.gradients(["x": x], seed: { _ in seed }, wrt: ["x", "p"]).gradients["x"])
            // The Add passes the gradient unchanged to the product's own rule.
            #expect(try fused.scalars(as: Float.self).map(\.bitPattern) == apart.scalars(as: Float.self).map(\.bitPattern))
        }
    }

    // MARK: - A class-token readout

    /// One transformer block read out at token 0, as ViT's classifier does: LayerNorm, single-head
    /// attention (products with transposed operands, Softmax), a GELU MLP, a final LayerNorm,
    /// Gather of token 0 and a Gemm head. Every backward shortcut takes part: the readout's
    /// gradient reaches one token in six.
    func readout(_ dtype: DType) throws -> Executor {
        func weights(_ shape: [Int], _ seed: UInt64) throws -> Tensor { try randomTensor(shape, seed: seed, dtype: dtype) }
        func constant(_ name: String, _ value: Tensor) -> Node {
            Node(opType: "Constant", inputs: [], outputs: [name], attributes: ["value": .tensor(value)])
        }
        func scalar(_ value: Double) throws -> Tensor { try Tensor(shape: [], scalars: [value]).converted(to: dtype) }
        return try Executor(model: makeModel(
            [
                Node(opType: "LayerNormalization", inputs: ["x", "g1", "b1"], outputs: ["h"], attributes: ["axis": .int(-1)]),
                Node(opType: "MatMul", inputs: ["h", "wq"], outputs: ["q"]),
                Node(opType: "MatMul", inputs: ["h", "wk"], outputs: ["k"]),
                Node(opType: "MatMul", inputs: ["h", "wv"], outputs: ["v"]),
                Node(opType: "Transpose", inputs: ["k"], outputs: ["kt"], attributes: ["perm": .ints([0, 2, 1])]),
                Node(opType: "MatMul", inputs: ["q", "kt"], outputs: ["s"]),
                constant("scale", try scalar(0.35)),
                Node(opType: "Mul", inputs: ["s", "scale"], outputs: ["s2"]),
                Node(opType: "Softmax", inputs: ["s2"], outputs: ["attention"], attributes: ["axis": .int(-1)]),
                Node(opType: "MatMul", inputs: ["attention", "v"], outputs: ["o"]),
                Node(opType: "Add", inputs: ["o", "x"], outputs: ["r"]),
                Node(opType: "MatMul", inputs: ["r", "w1"], outputs: ["p1"]),
                Node(opType: "Add", inputs: ["p1", "c1"], outputs: ["u"]),
                constant("root2", try scalar(Double(Float(2).squareRoot()))), constant("one", try scalar(1)),
                constant("half", try scalar(0.5)),
                Node(opType: "Div", inputs: ["u", "root2"], outputs: ["ud"]),
                Node(opType: "Erf", inputs: ["ud"], outputs: ["ue"]),
                Node(opType: "Add", inputs: ["ue", "one"], outputs: ["ua"]),
                Node(opType: "Mul", inputs: ["u", "ua"], outputs: ["um"]),
                Node(opType: "Mul", inputs: ["um", "half"], outputs: ["gelu"]),
                Node(opType: "MatMul", inputs: ["gelu", "w2"], outputs: ["p2"]),
                Node(opType: "Add", inputs: ["p2", "c2"], outputs: ["z"]),
                Node(opType: "Add", inputs: ["z", "r"], outputs: ["block"]),
                Node(opType: "LayerNormalization", inputs: ["block", "g2", "b2"], outputs: ["n2"], attributes: ["axis": .int(-1)]),
                constant("token", try Tensor(shape: [], scalars: [Int64(0)])),
                Node(opType: "Gather", inputs: ["n2", "token"], outputs: ["cls"], attributes: ["axis": .int(1)]),
                Node(opType: "Gemm", inputs: ["cls", "head", "bias"], outputs: ["logits"], attributes: ["transB": .int(1)]),
            ],
            inputs: [ValueInfo(name: "x", elementType: dtype, shape: [.symbolic("N"), .fixed(6), .fixed(8)])],
            outputs: ["logits"],
            initializers: [
                "g1": try weights([8], 50), "b1": try weights([8], 51), "wq": try weights([8, 8], 52), "wk": try weights([8, 8], 53),
                "wv": try weights([8, 8], 54), "w1": try weights([8, 12], 55), "c1": try weights([12], 56),
                "w2": try weights([12, 8], 57), "c2": try weights([8], 58), "g2": try weights([8], 59), "b2": try weights([8], 60),
                "head": try weights([5, 8], 61), "bias": try weights([5], 62),
            ]))
    }

    @Test func classTokenReadoutGradientsMatchDoublePrecision() throws {
        // float32 takes the shortcuts (zero rows left out of the products, zero-gradient rows of
        // the normalizations and the softmax skipped, the fused chains); float64 runs every
        // product dense on the BLAS. Sums of at most a dozen float32 terms of magnitude ≤ ~10
        // through one block: 1e-5 of the largest gradient covers their roundings many times over;
        // a row left out that should not be is off by the gradient itself.
        func run(_ dtype: DType) throws -> [String: [Double]] {
            let x = try randomTensor([3, 6, 8], seed: 63, dtype: dtype)
            // The logits of classes 1, 4 and 0 of the three samples: a one-hot seed.
            let seed = try Tensor(shape: [3, 5], scalars: (0..<15).map { [1, 9, 10].contains($0) ? 1.0 : 0 }).converted(to: dtype)
            let result = try readout(dtype).gradients(["x": x], seed: { _ in seed }, wrt: ["x", "h", "attention"])
            return try result.gradients.mapValues { try $0.doubles() }
        }
        let (single, double) = (try run(.float32), try run(.float64))
        for name in ["x", "h", "attention"] {
            let (ours, exact) = (try #require(single[name]), try #require(double[name]))
            let largest = exact.map(abs).max() ?? 0
            #expect(largest > 0 && ours.count == exact.count, "\(name)")
            #expect(zip(ours, exact).allSatisfy { abs($0 - $1) <= 1e-5 * largest }, "∂\(name)")
        }
        // The attention rows of tokens 1-5 get no gradient: the readout reads token 0 only.
        let attention = try #require(single["attention"])
        for sample in 0..<3 { #expect(attention[(sample * 6 + 1) * 6..<(sample + 1) * 36].allSatisfy { $0 == 0 }) }
    }

    // MARK: - LayerNormalization and Softmax

    /// The LayerNormalization rule's step for `x` (`[rows, 8]`), with or without the forward's statistics.
    func layerNormGradients(_ x: Tensor, _ g: Tensor, savedStatistics: Bool) throws -> [Tensor?] {
        let op = LayerNormalization(axis: -1, epsilon: 1e-5)
        let scale = try randomTensor([8], seed: 64, dtype: x.dtype)
        let bias = try randomTensor([8], seed: 65, dtype: x.dtype)
        let outputs = try op.forward(OpInputs([x, scale, bias]))
        let kept = savedStatistics ? outputs : [nil, nil, nil]
        return try op.backward(
            BackwardStep(
                inputs: [x, scale, nil], inputShapes: [x.shape, [8], [8]], inputTypes: [x.dtype, x.dtype, x.dtype],
                outputs: kept, outputShapes: outputs.map { $0?.shape }, outputTypes: outputs.map { $0?.dtype },
                outputGradients: [g], wanted: [true, true, true]))
    }

    /// Rows 1, 3 and 4 of a `[6, 8]` gradient are zero; row 4 of `x` holds a NaN.
    func sparseRows(_ dtype: DType) throws -> (x: Tensor, g: Tensor) {
        var x = try randomTensor([6, 8], seed: 66).doubles()
        x[4 * 8 + 2] = .nan
        var g = try randomTensor([6, 8], seed: 67).doubles()
        for row in [1, 3, 4] { for j in 0..<8 { g[row * 8 + j] = 0 } }
        return (try Tensor(shape: [6, 8], scalars: x).converted(to: dtype), try Tensor(shape: [6, 8], scalars: g).converted(to: dtype))
    }

    @Test(arguments: [DType.float32, .float64])
    func layerNormalizationSkipsZeroRowsAndReusesItsStatistics(_ dtype: DType) throws {
        let (x, g) = try sparseRows(dtype)
        let saved = try layerNormGradients(x, g, savedStatistics: true).map { try $0.map { try $0.doubles() } }
        let recomputed = try layerNormGradients(x, g, savedStatistics: false).map { try $0.map { try $0.doubles() } }
        let gx = try #require(saved[0])
        // Zero-gradient rows with finite values get zeros; the one holding a NaN gets the formula's NaN.
        for row in [1, 3] { #expect(gx[row * 8..<(row + 1) * 8].allSatisfy { $0 == 0 }) }
        #expect(gx[4 * 8..<5 * 8].allSatisfy { $0.isNaN })
        for (index, name) in ["∂x", "∂scale", "∂bias"].enumerated() {
            let (ours, reference) = (try #require(saved[index]), try #require(recomputed[index]))
            if dtype == .float64 {
                // The forward's mean and 1/σ are the same double-precision sums the rule recomputes.
                #expect(zip(ours, reference).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }, "\(name)")
            } else {
                // The forward keeps float32 statistics (rounded from its double sums, 6e-8
                // relative): the gradients move by a few such roundings.
                let largest = reference.filter(\.isFinite).map(abs).max() ?? 0
                #expect(zip(ours, reference).allSatisfy { ($0.isNaN && $1.isNaN) || abs($0 - $1) <= 1e-6 * largest }, "\(name)")
            }
        }
    }

    @Test(arguments: [false, true])
    func softmaxSkipsZeroGradientRows(_ log: Bool) throws {
        let (x, g) = try sparseRows(.float32)
        let op = Softmax(axis: -1, flattens: false, log: log)
        let y = try #require(try op.forward(OpInputs([x]))[0])
        let gx = try #require(
            try op.backward(
                BackwardStep(
                    inputs: [nil], inputShapes: [x.shape], inputTypes: [.float32], outputs: [y], outputShapes: [y.shape],
                    outputTypes: [.float32], outputGradients: [g], wanted: [true]))[0]
        ).doubles()
        // The formulas in double precision from the same float32 outputs.
        let (ys, gs) = (try y.doubles(), try g.doubles())
        for row in 0..<6 {
            let range = row * 8..<(row + 1) * 8
            let total = range.reduce(0.0) { $0 + (log ? gs[$1] : gs[$1] * ys[$1]) }
            for i in range {
                let exact = log ? gs[i] - Foundation.exp(ys[i]) * total : ys[i] * (gs[i] - total)
                if row == 4 {
                    #expect(gx[i].isNaN)  // NaN outputs: the formula's NaN, not a skipped zero
                } else if [1, 3].contains(row) {
                    #expect(gx[i] == 0)
                } else {
                    // Eight float32 terms and one product: a few roundings of 6e-8 (exp's 2 ulps for LogSoftmax).
                    #expect(abs(gx[i] - exact) <= 1e-6, "row \(row): \(gx[i]) vs \(exact)")
                }
            }
        }
    }

    @Test func halfPrecisionLayerNormalizationRecomputesItsStatistics() throws {
        // float16 inputs run the float32 rule on widened values; statistics rounded to half
        // precision would shift x̂ by up to 5e-4 of the mean over σ. The gradient equals the float32
        // graph's on the same values rounded once to float16 (within float16's 1e-3).
        func executor(_ dtype: DType) throws -> Executor {
            try Executor(model: makeModel(
                [Node(opType: "LayerNormalization", inputs: ["x", "s", "b"], outputs: ["y"], attributes: ["axis": .int(-1)])],
                inputs: [ValueInfo(name: "x", elementType: dtype, shape: [.fixed(4), .fixed(8)])], outputs: ["y"],
                initializers: [
                    "s": try randomTensor([8], seed: 68, dtype: dtype), "b": try randomTensor([8], seed: 69, dtype: dtype),
                ]))
        }
        // A large mean against a small spread: where rounded statistics would show.
        let values = try randomTensor([4, 8], seed: 70).doubles().map { 20 + $0 }
        let x = try Tensor(shape: [4, 8], scalars: values).converted(to: .float16)
        let g = try randomTensor([4, 8], seed: 71, dtype: .float16)
        let half = try #require(try executor(.float16).gradients(["x": x], seed: { _ in g }, wrt: ["x"]).gradients["x"]).doubles()
        let single = try #require(
            try executor(.float32).gradients(["x": x.converted(to: .float32)], seed: { _ in try g.converted(to: .float32) }, wrt: ["x"])
                .gradients["x"]
        ).doubles()
        let largest = single.map(abs).max() ?? 0
        #expect(largest > 0 && zip(half, single).allSatisfy { abs($0 - $1) <= 1e-3 * largest })
    }
}

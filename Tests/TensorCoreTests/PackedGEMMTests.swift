import Testing
@testable import TensorCore

/// The levels with product kernels that this CPU runs.
let productLevels = KernelLevel.supported.filter { Kernels(level: $0)?.gemm != nil }

/// The product kernels of every level this CPU runs, against a double-precision product in every
/// operand form (row-major, transposed, packed), across the panel and block edges (6 and 8 rows,
/// 16 and 48 columns, masked tails of 1 to 15 columns, depth blocks), against the fused
/// multiply-add chain they promise bit for bit, and against themselves split differently. The
/// portable level has no product kernels (BLAS multiplies), so there is nothing of its own to test.
@Suite(.enabled(if: !productLevels.isEmpty, "this CPU runs no product kernels; every product goes through BLAS"))
struct PackedGEMMTests {
    static let levels = productLevels

    static func gemm(_ level: KernelLevel) throws -> PackedGEMM { try #require(Kernels(level: level)?.gemm) }

    /// How an operand is handed to the kernels.
    enum Form: CaseIterable { case rowMajor, transposed, packed }

    /// Row-major `m × k` and `k × n` operands with values in [-1, 1), and their product's elements
    /// in double precision.
    struct Problem {
        let m, n, k: Int
        let a, b: [Float]

        init(m: Int, n: Int, k: Int, seed: UInt64) {
            var generator = SeededGenerator(seed: seed)
            (self.m, self.n, self.k) = (m, n, k)
            a = (0..<m * k).map { _ in Float.random(in: -1..<1, using: &generator) }
            b = (0..<k * n).map { _ in Float.random(in: -1..<1, using: &generator) }
        }

        /// `(Σ a b, Σ |a b|)` of every element, row by row.
        func reference() -> [(Double, Double)] {
            var result = [(Double, Double)](repeating: (0, 0), count: m * n)
            for i in 0..<m {
                for p in 0..<k {
                    let x = Double(a[i * k + p])
                    for j in 0..<n {
                        let term = x * Double(b[p * n + j])
                        result[i * n + j].0 += term
                        result[i * n + j].1 += abs(term)
                    }
                }
            }
            return result
        }

        /// What the kernels promise bit for bit: `c = fma(aᵢₚ, bₚⱼ, c)` over the depth in order from
        /// zero, then `+ rowBias[i]`, `+ columnBias[j]`, then `max(0, ·)` keeping NaN.
        func chain(rowBias: [Float]? = nil, columnBias: [Float]? = nil, relu: Bool = false) -> [Float] {
            var c = [Float](repeating: 0, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    var sum: Float = 0
                    for p in 0..<k { sum = sum.addingProduct(a[i * k + p], b[p * n + j]) }
                    if let rowBias { sum += rowBias[i] }
                    if let columnBias { sum += columnBias[j] }
                    c[i * n + j] = relu && 0 > sum ? 0 : sum
                }
            }
            return c
        }

        /// The worst error over the float32 summation bound `γₖ Σ|a b|` (Higham's γₖ = k u / (1 − k u),
        /// u = 2⁻²⁴; an FMA chain rounds once per step, within it), plus the bias additions'
        /// roundings; at most 1 when every element is within it.
        func worstRatio(_ c: [Float], _ reference: [(Double, Double)], rowBias: [Float]? = nil, columnBias: [Float]? = nil) -> Double {
            let u = 0x1p-24
            let gamma = Double(k + 2) * u / (1 - Double(k + 2) * u)
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var (exact, magnitude) = reference[i * n + j]
                    let bias = Double(rowBias?[i] ?? 0) + Double(columnBias?[j] ?? 0)
                    exact += bias
                    magnitude += abs(bias)
                    let error = abs(Double(c[i * n + j]) - exact)
                    worst = max(worst, error / (gamma * magnitude + Double(Float.leastNormalMagnitude)))
                }
            }
            return worst
        }

        /// `C = A · B` on `gemm` with A and B handed over in the forms asked for.
        func product(
            _ gemm: PackedGEMM, left: Form, right: Form, rowBias: [Float]? = nil, columnBias: [Float]? = nil,
            relu: Bool = false, accumulateOnto initial: [Float]? = nil, threaded: Bool = true
        ) throws -> [Float] {
            var c = initial ?? [Float](repeating: .nan, count: m * n)
            // Transposed copies of the operands, and one spare element each so an empty operand has an address.
            let at = (0..<k * m).map { a[($0 % m) * k + $0 / m] } + [0]
            let bt = (0..<n * k).map { b[($0 % k) * n + $0 / k] } + [0]
            try (a + [0]).withUnsafeBufferPointer { pa in
                try (b + [0]).withUnsafeBufferPointer { pb in
                    try at.withUnsafeBufferPointer { pat in
                        try bt.withUnsafeBufferPointer { pbt in
                            let lhs: PackedGEMM.Operand
                            switch left {
                            case .rowMajor: lhs = .rowMajor(pa.baseAddress!, stride: k)
                            case .transposed: lhs = .transposed(pat.baseAddress!, stride: m)
                            case .packed: lhs = .packed(try gemm.pack(left: pa.baseAddress!, rows: m, depth: k, rowStride: k))
                            }
                            let rhs: PackedGEMM.Operand
                            switch right {
                            case .rowMajor: rhs = .rowMajor(pb.baseAddress!, stride: n)
                            case .transposed: rhs = .transposed(pbt.baseAddress!, stride: k)
                            case .packed: rhs = .packed(try gemm.pack(right: pb.baseAddress!, depth: k, columns: n, depthStride: n))
                            }
                            c.withUnsafeMutableBufferPointer { pc in
                                gemm.multiply(
                                    m: m, n: n, k: k, a: lhs, b: rhs, c: pc.baseAddress!, ldc: n,
                                    accumulate: initial != nil, rowBias: rowBias, columnBias: columnBias, relu: relu,
                                    threaded: threaded)
                            }
                        }
                    }
                }
            }
            return c
        }
    }

    /// Sizes on both sides of every panel and block edge (depth blocks are 64 to 1024 deep).
    static let shapes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (8, 48, 256), (9, 49, 257), (7, 15, 3), (17, 97, 100), (6, 16, 1100), (3, 300, 513), (130, 33, 64),
    ]

    static let cases = levels.flatMap { level in shapes.indices.map { (level, $0) } }

    @Test(arguments: cases)
    func everyOperandFormIsTheFMAChainAndWithinTheBoundOfDoublePrecision(_ level: KernelLevel, _ index: Int) throws {
        let gemm = try Self.gemm(level)
        let (m, n, k) = Self.shapes[index]
        let problem = Problem(m: m, n: n, k: k, seed: UInt64(index + 1))
        let reference = problem.reference()
        let chain = problem.chain()
        #expect(problem.worstRatio(chain, reference) <= 1)
        for left in Form.allCases {
            for right in Form.allCases {
                let c = try problem.product(gemm, left: left, right: right)
                #expect(c.map(\.bitPattern) == chain.map(\.bitPattern), "\(level) m \(m) n \(n) k \(k) A \(left) B \(right)")
            }
        }
    }

    @Test(arguments: levels)
    func theDepthAndRowBlocksChangeNoBit(_ level: KernelLevel) throws {
        // The blocks come from the cache sizes, so they differ between machines; the chain of each
        // element must not. Blocks from 8 deep and one panel of rows up to the whole product.
        let problem = Problem(m: 50, n: 70, k: 100, seed: 14)
        let chain = problem.chain()
        let gemm = try Self.gemm(level)
        for (depth, rows) in [(8, 1), (16, 13), (64, 200), (100, 50)] {
            for (left, right) in [(Form.packed, Form.rowMajor), (.rowMajor, .packed), (.transposed, .rowMajor)] {
                let c = try problem.product(gemm.withBlocking(depth: depth, rows: rows), left: left, right: right)
                #expect(c.map(\.bitPattern) == chain.map(\.bitPattern), "blocks \(depth) x \(rows), A \(left) B \(right)")
            }
        }
    }

    /// 70 columns end in a masked 22-column panel; 53 in 5 columns that AVX-512 multiplies with
    /// the rows side by side (``narrow_tile``).
    @Test(arguments: levels.flatMap { level in [70, 53].map { (level, $0) } })
    func biasAndReLUAreAppliedInTheStores(_ level: KernelLevel, _ n: Int) throws {
        let problem = Problem(m: 19, n: n, k: 300, seed: 7)
        var generator = SeededGenerator(seed: 8)
        let rowBias = (0..<19).map { _ in Float.random(in: -3..<3, using: &generator) }
        let columnBias = (0..<n).map { _ in Float.random(in: -3..<3, using: &generator) }
        let expected = problem.chain(rowBias: rowBias, columnBias: columnBias, relu: true)
        for (left, right) in [(Form.packed, Form.rowMajor), (.rowMajor, .packed), (.transposed, .transposed)] {
            let c = try problem.product(
                try Self.gemm(level), left: left, right: right, rowBias: rowBias, columnBias: columnBias, relu: true)
            #expect(c.map(\.bitPattern) == expected.map(\.bitPattern), "A \(left) B \(right)")
        }
        let unrectified = problem.chain(rowBias: rowBias, columnBias: columnBias)
        #expect(problem.worstRatio(unrectified, problem.reference(), rowBias: rowBias, columnBias: columnBias) <= 1)
        #expect(expected.contains(0) && expected.allSatisfy { $0 >= 0 })
    }

    @Test(arguments: levels)
    func accumulateContinuesTheChainFromC(_ level: KernelLevel) throws {
        // C + A · B as one chain from C: the same bits as a product whose depth starts with C.
        let problem = Problem(m: 13, n: 21, k: 40, seed: 12)
        var generator = SeededGenerator(seed: 13)
        let initial = (0..<13 * 21).map { _ in Float.random(in: -2..<2, using: &generator) }
        let c = try problem.product(try Self.gemm(level), left: .rowMajor, right: .transposed, accumulateOnto: initial)
        var expected = initial
        for i in 0..<13 {
            for j in 0..<21 {
                for p in 0..<40 { expected[i * 21 + j] = expected[i * 21 + j].addingProduct(problem.a[i * 40 + p], problem.b[p * 21 + j]) }
            }
        }
        #expect(c.map(\.bitPattern) == expected.map(\.bitPattern))
    }

    @Test(arguments: levels)
    func emptyDepthGivesTheBiasAlone(_ level: KernelLevel) throws {
        let problem = Problem(m: 5, n: 20, k: 0, seed: 9)
        let rowBias: [Float] = [1, -2, 3, -4, 5]
        let c = try problem.product(try Self.gemm(level), left: .rowMajor, right: .packed, rowBias: rowBias, relu: true)
        #expect(c == (0..<100).map { max(rowBias[$0 / 20], 0) })
    }

    @Test(arguments: levels)
    func reluKeepsNaNLikeTheOtherKernels(_ level: KernelLevel) throws {
        var problem = Problem(m: 9, n: 50, k: 4, seed: 10)
        var a = problem.a
        a[3 * 4 + 1] = .nan  // row 3 becomes NaN in every column
        problem = Problem(copying: problem, a: a)
        let c = try problem.product(try Self.gemm(level), left: .packed, right: .packed, relu: true)
        #expect((0..<50).allSatisfy { c[3 * 50 + $0].isNaN })
        #expect(c.enumerated().allSatisfy { $0.offset / 50 == 3 || $0.element >= 0 })
    }

    /// Each element is summed in depth order whatever the split, so a column (a sample) comes out
    /// bit for bit the same computed alone, with its neighbours, or on another thread.
    @Test(arguments: levels)
    func aColumnDoesNotDependOnItsNeighboursOrTheSplit(_ level: KernelLevel) throws {
        let gemm = try Self.gemm(level)
        let problem = Problem(m: 40, n: 150, k: 700, seed: 11)
        let whole = try problem.product(gemm, left: .packed, right: .rowMajor)
        let serial = try problem.product(gemm, left: .packed, right: .rowMajor, threaded: false)
        #expect(whole == serial)
        for j in [0, 15, 16, 47, 48, 149] {
            let column = Problem(copying: problem, b: (0..<700).map { problem.b[$0 * 150 + j] }, n: 1)
            let alone = try column.product(gemm, left: .packed, right: .rowMajor)
            #expect((0..<40).allSatisfy { alone[$0].bitPattern == whole[$0 * 150 + j].bitPattern }, "column \(j)")
        }
    }
}

extension PackedGEMMTests.Problem {
    /// `problem` with `a` or `b` (and then `n`) replaced.
    init(copying problem: Self, a: [Float]? = nil, b: [Float]? = nil, n: Int? = nil) {
        (m, k) = (problem.m, problem.k)
        self.n = n ?? problem.n
        self.a = a ?? problem.a
        self.b = b ?? problem.b
    }
}

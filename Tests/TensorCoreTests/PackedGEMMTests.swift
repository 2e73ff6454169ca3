import Testing
import TensorCore

/// Our AVX-512 product kernels against a double-precision product, in every operand form, across
/// the panel edges (8 rows, 48 and 16 columns, 256 depth steps), and against themselves split
/// differently. Without AVX-512 (or with `SHORTCUT_DETECT_KERNELS=portable`, the test script's
/// second run) the kernels never run and every caller takes BLAS, so there is nothing of theirs
/// to test.
@Suite(.enabled(if: PackedGEMM.isAvailable, "the AVX-512 kernels are off; every product goes through BLAS"))
struct PackedGEMMTests {
    /// Row-major `m × k` and `k × n` operands with values in [-1, 1), and their product's rows and
    /// columns in double precision.
    struct Problem {
        let m, n, k: Int
        let a, b: [Float]

        init(m: Int, n: Int, k: Int, seed: UInt64) {
            var generator = SeededGenerator(seed: seed)
            (self.m, self.n, self.k) = (m, n, k)
            a = (0..<m * k).map { _ in Float.random(in: -1..<1, using: &generator) }
            b = (0..<k * n).map { _ in Float.random(in: -1..<1, using: &generator) }
        }

        /// `(Σ a b, Σ |a b|)` for element `(i, j)`.
        func reference(_ i: Int, _ j: Int) -> (Double, Double) {
            var (sum, magnitude) = (0.0, 0.0)
            for p in 0..<k {
                let term = Double(a[i * k + p]) * Double(b[p * n + j])
                sum += term
                magnitude += abs(term)
            }
            return (sum, magnitude)
        }

        /// The worst error over the float32 summation bound `γₖ Σ|a b|` (Higham's γₖ = k u / (1 − k u),
        /// u = 2⁻²⁴), plus the bias addition's rounding; at most 1 when every element is within it.
        func worstRatio(_ c: [Float], rowBias: [Float]? = nil, columnBias: [Float]? = nil, relu: Bool = false) -> Double {
            let u = 0x1p-24
            let gamma = Double(k + 2) * u / (1 - Double(k + 2) * u)
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var (exact, magnitude) = reference(i, j)
                    let bias = Double(rowBias?[i] ?? 0) + Double(columnBias?[j] ?? 0)
                    exact += bias
                    magnitude += abs(bias)
                    if relu { exact = max(exact, 0) }
                    let error = abs(Double(c[i * n + j]) - exact)
                    worst = max(worst, error / (gamma * magnitude + Double(Float.leastNormalMagnitude)))
                }
            }
            return worst
        }

        /// `C = A · B` with A and B in the forms asked for.
        func product(
            packA: Bool, packB: Bool, rowBias: [Float]? = nil, columnBias: [Float]? = nil, relu: Bool = false,
            threaded: Bool = true
        ) throws -> [Float] {
            var c = [Float](repeating: .nan, count: m * n)
            // One spare element each, so an empty operand still has an address.
            try (a + [0]).withUnsafeBufferPointer { pa in
                try (b + [0]).withUnsafeBufferPointer { pb in
                    let left: PackedGEMM.Operand =
                        packA
                        ? .packed(try PackedGEMM.pack(left: pa.baseAddress!, rows: m, depth: k, rowStride: k))
                        : .rowMajor(pa.baseAddress!, stride: k)
                    let right: PackedGEMM.Operand =
                        packB
                        ? .packed(try PackedGEMM.pack(right: pb.baseAddress!, depth: k, columns: n, depthStride: n))
                        : .rowMajor(pb.baseAddress!, stride: n)
                    c.withUnsafeMutableBufferPointer { pc in
                        PackedGEMM.multiply(
                            m: m, n: n, k: k, a: left, b: right, c: pc.baseAddress!, ldc: n, rowBias: rowBias,
                            columnBias: columnBias, relu: relu, threaded: threaded)
                    }
                }
            }
            return c
        }
    }

    /// Sizes on both sides of every panel and block edge.
    static let shapes: [(m: Int, n: Int, k: Int)] = [
        (1, 1, 1), (8, 48, 256), (9, 49, 257), (7, 15, 3), (17, 97, 100), (64, 196, 576), (3, 300, 513), (130, 33, 64),
    ]

    @Test(arguments: 0..<shapes.count)
    func everyOperandFormMatchesDoublePrecision(_ index: Int) throws {
        let (m, n, k) = Self.shapes[index]
        let problem = Problem(m: m, n: n, k: k, seed: UInt64(index + 1))
        for (packA, packB) in [(false, false), (true, false), (false, true), (true, true)] {
            let c = try problem.product(packA: packA, packB: packB)
            #expect(problem.worstRatio(c) <= 1, "m \(m) n \(n) k \(k) packA \(packA) packB \(packB)")
        }
    }

    @Test func biasAndReLUAreAppliedInTheStores() throws {
        let problem = Problem(m: 19, n: 70, k: 300, seed: 7)
        var generator = SeededGenerator(seed: 8)
        let rowBias = (0..<19).map { _ in Float.random(in: -3..<3, using: &generator) }
        let columnBias = (0..<70).map { _ in Float.random(in: -3..<3, using: &generator) }
        let c = try problem.product(packA: true, packB: false, rowBias: rowBias, columnBias: columnBias, relu: true)
        #expect(problem.worstRatio(c, rowBias: rowBias, columnBias: columnBias, relu: true) <= 1)
        #expect(c.contains(0) && c.allSatisfy { $0 >= 0 })
    }

    @Test func emptyDepthGivesTheBiasAlone() throws {
        let problem = Problem(m: 5, n: 20, k: 0, seed: 9)
        let rowBias: [Float] = [1, -2, 3, -4, 5]
        let c = try problem.product(packA: false, packB: true, rowBias: rowBias, relu: true)
        #expect(c == (0..<100).map { max(rowBias[$0 / 20], 0) })
    }

    @Test func reluKeepsNaNLikeTheOtherKernels() throws {
        var problem = Problem(m: 9, n: 50, k: 4, seed: 10)
        var a = problem.a
        a[3 * 4 + 1] = .nan  // row 3 becomes NaN in every column
        problem = Problem(copying: problem, a: a)
        let c = try problem.product(packA: true, packB: true, relu: true)
        #expect((0..<50).allSatisfy { c[3 * 50 + $0].isNaN })
        #expect(c.enumerated().allSatisfy { $0.offset / 50 == 3 || $0.element >= 0 })
    }

    /// Each element is summed in depth order whatever the split, so a column (a sample) comes out
    /// bit for bit the same computed alone, with its neighbours, or on another thread.
    @Test func aColumnDoesNotDependOnItsNeighboursOrTheSplit() throws {
        let problem = Problem(m: 40, n: 150, k: 700, seed: 11)
        let whole = try problem.product(packA: true, packB: false)
        let serial = try problem.product(packA: true, packB: false, threaded: false)
        #expect(whole == serial)
        for j in [0, 47, 48, 149] {
            let column = Problem(copying: problem, b: (0..<700).map { problem.b[$0 * 150 + j] }, n: 1)
            let alone = try column.product(packA: true, packB: false)
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

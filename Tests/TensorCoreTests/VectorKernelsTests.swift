import Foundation
import Testing
import TensorCore

/// The levels with vector kernels that this CPU runs.
let vectorLevels = KernelLevel.supported.filter { Kernels(level: $0)?.vector != nil }

/// The element-wise, softmax, layer normalization and Winograd transform kernels of every level this CPU runs, against
/// double precision with stated bounds (NaN and masked tails included), and the levels against
/// each other: they run the same operations lane by lane, so they must give the same bits.
@Suite(.enabled(if: !vectorLevels.isEmpty, "this CPU runs no vector kernels; Swift loops run instead"))
struct VectorKernelsTests {
    static func vector(_ level: KernelLevel) throws -> VectorKernels { try #require(Kernels(level: level)?.vector) }

    /// 40,001 points of [-6, 6], then a NaN (in the masked tail of both widths: 40,002 = 16 · 2,500 + 2).
    static let points = (0...40_000).map { Float(-6 + 12 * Double($0) / 40_000) } + [.nan]
    /// A seeded upstream gradient in [-1, 1) for each point.
    static let upstream: [Float] = {
        var generator = SeededGenerator(seed: 31)
        return points.map { _ in Float.random(in: -1..<1, using: &generator) }
    }()

    /// `kernel(x, y, count)` over `x`.
    static func apply(_ x: [Float], _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { kernel(px.baseAddress!, $0.baseAddress!, x.count) } }
        return y
    }

    /// Every kernel of `vector` on the shared inputs, for comparing levels.
    static func outputs(_ vector: VectorKernels) -> [[Float]] {
        let x = points
        let g = upstream
        var results = [
            apply(x) { vector.erf($0, into: $1, count: $2) }, apply(x) { vector.gelu($0, into: $1, count: $2) },
            apply(x) { vector.geluChain($0, into: $1, count: $2, divisor: 1.4142135, one: 1, half: 0.5) },
            apply(x) { p, out, count in g.withUnsafeBufferPointer { vector.erfBackward(p, gradient: $0.baseAddress!, into: out, count: count) } },
            apply(x) { p, out, count in g.withUnsafeBufferPointer { vector.geluBackward(p, gradient: $0.baseAddress!, into: out, count: count) } },
        ]
        for extent in [1, 7, 16, 23, 197] {
            let logits = (0..<6 * extent).map { Float(sin(Double($0) * 0.37) * 30) }
            results.append(apply(logits) { x, y, _ in vector.softmax(x, into: y, rows: 6, extent: extent) })
        }
        for size in [5, 8, 37, 768] {
            let rows = 6
            let x = (0..<rows * size).map { Float(sin(Double($0) * 0.61) * 3 + 0.5) }
            let (gamma, beta) = ((0..<size).map { Float(1 + cos(Double($0))) }, (0..<size).map { Float(sin(Double($0))) })
            var (means, inverses) = ([Float](repeating: 0, count: rows), [Float](repeating: 0, count: rows))
            results.append(apply(x) { p, y, _ in
                means.withUnsafeMutableBufferPointer { m in
                    inverses.withUnsafeMutableBufferPointer { v in
                        vector.layerNorm(
                            p, into: y, rows: rows, size: size, gamma: gamma, beta: beta, epsilon: 1e-5, means: m.baseAddress!,
                            inverses: v.baseAddress!)
                    }
                }
            } + means + inverses)
        }
        results.append(winogradInput(vector, Winograd.image).flatMap { $0 })
        results.append(winogradOutput(vector, Winograd.points).flatMap { $0 })
        return results
    }

    @Test(arguments: vectorLevels)
    func erfIsWithinItsApproximationErrorOfDoublePrecision(_ level: KernelLevel) throws {
        // The rational erf's measured worst case is 4.1e-7 (about 7 float ulps near ±1); 5e-7 allows
        // the last rounding, and a wrong coefficient shows up as 1e-4 or worse.
        let vector = try Self.vector(level)
        let y = Self.apply(Self.points) { vector.erf($0, into: $1, count: $2) }
        let worst = zip(Self.points, y).dropLast().map { abs(Double($1) - Foundation.erf(Double($0))) }.max() ?? .infinity
        #expect(worst <= 5e-7)
        #expect(y.last?.isNaN == true)
    }

    @Test(arguments: vectorLevels)
    func geluAndTheFiveNodeChainMatchDoublePrecision(_ level: KernelLevel) throws {
        let vector = try Self.vector(level)
        let y = Self.apply(Self.points) { vector.gelu($0, into: $1, count: $2) }
        // x (1 + erf(x/√2)) / 2: erf's 5e-7 scaled by |x| / 2, plus four roundings of 2⁻²⁴ of the result.
        for (x, value) in zip(Self.points, y).dropLast() {
            let exact = Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot())) / 2
            #expect(abs(Double(value) - exact) <= 2.5e-7 * abs(Double(x)) + 4 * 0x1p-24 * abs(exact) + 1e-30, "x \(x)")
        }
        #expect(y.last?.isNaN == true)
        // The chain rounds each node's operation as the nodes do: x / c, erf (this level's), + 1, · x, · ½.
        let divided = Self.points.map { $0 / Float(1.4142135) }
        let erfs = Self.apply(divided) { vector.erf($0, into: $1, count: $2) }
        let chain = Self.apply(Self.points) { vector.geluChain($0, into: $1, count: $2, divisor: 1.4142135, one: 1, half: 0.5) }
        let expected = zip(Self.points, erfs).map { x, e in (x * (e + 1)) * 0.5 }
        #expect(chain.map(\.bitPattern) == expected.map(\.bitPattern))
    }

    @Test(arguments: vectorLevels)
    func erfAndGELUGradientsMatchDoublePrecision(_ level: KernelLevel) throws {
        // g · f′(x) with |g| < 1: f′ is within a few float roundings (erf's 4.1e-7, exp's 2 ulp) of its
        // value and |f′| ≤ 1.13, so 2e-6 absolute is loose for that and tight for a wrong term
        // (GELU's x φ(x) is up to 0.24).
        let vector = try Self.vector(level)
        let g = Self.upstream
        let erfSlope = Self.apply(Self.points) { x, out, n in g.withUnsafeBufferPointer { vector.erfBackward(x, gradient: $0.baseAddress!, into: out, count: n) } }
        let geluSlope = Self.apply(Self.points) { x, out, n in g.withUnsafeBufferPointer { vector.geluBackward(x, gradient: $0.baseAddress!, into: out, count: n) } }
        for i in 0..<Self.points.count - 1 {
            let x = Double(Self.points[i])
            let density = exp(-x * x / 2) / (2 * Double.pi).squareRoot()
            let exactErf = Double(g[i]) * 2 / Double.pi.squareRoot() * exp(-x * x)
            let exactGELU = Double(g[i]) * ((1 + Foundation.erf(x / 2.0.squareRoot())) / 2 + x * density)
            #expect(abs(Double(erfSlope[i]) - exactErf) <= 2e-6, "erf′ at \(x)")
            #expect(abs(Double(geluSlope[i]) - exactGELU) <= 2e-6, "GELU′ at \(x)")
        }
        #expect(erfSlope.last?.isNaN == true && geluSlope.last?.isNaN == true)
    }

    @Test(arguments: vectorLevels.flatMap { level in [1, 15, 16, 17, 197].map { (level, $0) } })
    func softmaxIsWithinItsRoundingBoundOfDoublePrecision(_ level: KernelLevel, _ extent: Int) throws {
        // Rows of logits in [-30, 30) (exp over 26 binades), then a row with a NaN and a row of -inf.
        // Each probability carries the rounding of x − max (|x − max| · 2⁻²⁴ in exp's argument, the
        // same relative error in its value), exp's own (at most 2 ulp), the row sum's (extent − 1
        // roundings) and the division's: a relative error within (|x − max| + extent + 3) · 2⁻²⁴.
        var generator = SeededGenerator(seed: UInt64(extent))
        let rows = 6
        var logits = (0..<rows * extent).map { _ in Float.random(in: -30..<30, using: &generator) }
        logits[(rows - 2) * extent] = .nan
        for i in 0..<extent { logits[(rows - 1) * extent + i] = -.infinity }
        let vector = try Self.vector(level)
        let y = Self.apply(logits) { x, y, _ in vector.softmax(x, into: y, rows: rows, extent: extent) }
        for row in 0..<rows - 2 {
            let values = logits[row * extent..<(row + 1) * extent].map(Double.init)
            let top = values.max() ?? 0
            let sum = values.map { Foundation.exp($0 - top) }.reduce(0, +)
            for (i, value) in values.enumerated() {
                let exact = Foundation.exp(value - top) / sum
                let bound = (abs(value - top) + Double(extent + 3)) * 0x1p-24
                #expect(abs(Double(y[row * extent + i]) - exact) <= bound * exact + Double(Float.leastNormalMagnitude))
            }
        }
        #expect(y[(rows - 2) * extent..<(rows - 1) * extent].allSatisfy { $0.isNaN })
        #expect(y.suffix(extent).allSatisfy { $0.isNaN })  // 0/0, as the Swift kernel gives
    }

    /// A 9 × 37 plane read with pads (1, 1): tiles of 4 × 4 taps every 2 pixels, 5 × 19 of them (runs
    /// of 19 tiles cross both widths' vectors and end in masked tails, and the last ones read padding).
    enum Winograd {
        static let (height, width, padTop, padLeft, tilesHigh, tilesWide) = (9, 37, 1, 1, 5, 19)
        static let image: [Float] = {
            var generator = SeededGenerator(seed: 40)
            return (0..<height * width).map { _ in Float.random(in: -1..<1, using: &generator) }
        }()
        /// 16 transform-domain points for each tile of a row.
        static let points: [Float] = {
            var generator = SeededGenerator(seed: 41)
            return (0..<16 * tilesWide).map { _ in Float.random(in: -1..<1, using: &generator) }
        }()
        static let bt: [[Double]] = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        static let at: [[Double]] = [[1, 1, 1, 0], [0, 1, -1, -1]]
    }

    /// The input transform of every tile row, runs of all tiles from column 0, as `[row][point · tiles + t]`.
    static func winogradInput(_ vector: VectorKernels, _ image: [Float]) -> [[Float]] {
        typealias W = Winograd
        return (0..<W.tilesHigh).map { ty in
            var v = [Float](repeating: .nan, count: 16 * W.tilesWide)
            image.withUnsafeBufferPointer { source in
                v.withUnsafeMutableBufferPointer { out in
                    vector.winogradInput(
                        source.baseAddress!, height: W.height, width: W.width, padTop: W.padTop, padLeft: W.padLeft,
                        ty: ty, tx: 0, count: W.tilesWide, into: out.baseAddress!, plane: W.tilesWide)
                }
            }
            return v
        }
    }

    /// The output transform of one row of tiles into every tile row of a map the image's size,
    /// with a bias and ReLU, as `[row][map]`.
    static func winogradOutput(_ vector: VectorKernels, _ points: [Float]) -> [[Float]] {
        typealias W = Winograd
        return (0..<W.tilesHigh).map { ty in
            var map = [Float](repeating: .nan, count: W.height * W.width)
            points.withUnsafeBufferPointer { m in
                map.withUnsafeMutableBufferPointer { out in
                    vector.winogradOutput(
                        m.baseAddress!, plane: W.tilesWide, count: W.tilesWide, into: out.baseAddress!, height: W.height,
                        width: W.width, ty: ty, tx: 0, bias: 0.25, relu: true)
                }
            }
            return map
        }
    }

    @Test(arguments: vectorLevels)
    func winogradInputTransformMatchesDoublePrecision(_ level: KernelLevel) throws {
        // Each point is ± a sum of up to 4 taps formed in two stages of float additions: within
        // 2 · 2⁻²⁴ of the sum of the taps' magnitudes. A wrong tap or sign is off by a tap's size.
        typealias W = Winograd
        let v = Self.winogradInput(try Self.vector(level), W.image)
        for ty in 0..<W.tilesHigh {
            for t in 0..<W.tilesWide {
                var d = [[Double]](repeating: [0, 0, 0, 0], count: 4)
                for i in 0..<4 {
                    for j in 0..<4 {
                        let (h, w) = (2 * ty - W.padTop + i, 2 * t - W.padLeft + j)
                        if h >= 0, h < W.height, w >= 0, w < W.width { d[i][j] = Double(W.image[h * W.width + w]) }
                    }
                }
                for xi in 0..<4 {
                    for nu in 0..<4 {
                        var (exact, magnitude) = (0.0, 0.0)
                        for a in 0..<4 { for b in 0..<4 { exact += W.bt[xi][a] * d[a][b] * W.bt[nu][b]; magnitude += abs(W.bt[xi][a] * d[a][b] * W.bt[nu][b]) } }
                        let value = Double(v[ty][(4 * xi + nu) * W.tilesWide + t])
                        #expect(abs(value - exact) <= 2 * 0x1p-24 * magnitude, "tile (\(ty), \(t)) point (\(xi), \(nu))")
                    }
                }
            }
        }
    }

    @Test(arguments: vectorLevels)
    func winogradOutputTransformMatchesDoublePrecision(_ level: KernelLevel) throws {
        // Each output is a sum of 9 points (Aᵀ M A) in four float additions, plus the bias: within
        // 5 · 2⁻²⁴ of the magnitudes' sum, then ReLU. Pixels outside the tiles' 2 × 2 blocks, and
        // rows below the map, stay untouched (NaN).
        typealias W = Winograd
        let maps = Self.winogradOutput(try Self.vector(level), W.points)
        for ty in 0..<W.tilesHigh {
            for h in 0..<W.height {
                for w in 0..<W.width {
                    let value = maps[ty][h * W.width + w]
                    guard h / 2 == ty else {
                        #expect(value.isNaN, "row \(h) written by tile row \(ty)")
                        continue
                    }
                    let (t, i, j) = (w / 2, h % 2, w % 2)
                    var (exact, magnitude) = (0.25, 0.25)
                    for a in 0..<4 {
                        for b in 0..<4 {
                            let term = W.at[i][a] * Double(W.points[(4 * a + b) * W.tilesWide + t]) * W.at[j][b]
                            exact += term
                            magnitude += abs(term)
                        }
                    }
                    #expect(abs(Double(value) - max(exact, 0)) <= 5 * 0x1p-24 * magnitude, "pixel (\(h), \(w))")
                }
            }
        }
    }

    @Test(.enabled(if: vectorLevels.count > 1, "this CPU runs one vector level"))
    func everyLevelGivesTheSameBits() throws {
        let reference = Self.outputs(try Self.vector(vectorLevels[0]))
        for level in vectorLevels.dropFirst() {
            let outputs = Self.outputs(try Self.vector(level))
            for (kernel, (ours, theirs)) in zip(outputs, reference).enumerated() {
                #expect(ours.map(\.bitPattern) == theirs.map(\.bitPattern), "\(level) against \(vectorLevels[0]), output \(kernel)")
            }
        }
    }
}

/// The kernel table and its selection: the level names and the errors a bad
/// `SHORTCUT_DETECT_KERNELS` gives.
@Suite struct KernelTableTests {
    @Test func theProcessRunsTheWidestLevelOrTheOneAskedFor() throws {
        let asked = ProcessInfo.processInfo.environment["SHORTCUT_DETECT_KERNELS"] ?? ""
        let level = Kernels.current.level
        #expect(Kernels.selectionError == nil)
        #expect(level == (asked.isEmpty ? KernelLevel.supported[0] : KernelLevel(rawValue: asked)))
        #expect((Kernels.current.gemm != nil) == (level != .portable))
        #expect((Kernels.current.vector != nil) == (level != .portable))
        #expect(KernelLevel.supported.last == .portable)
    }

    @Test func aBadLevelIsDescribed() {
        let unknown = KernelSelectionError(value: "avx3", supported: [.portable])
        #expect(unknown.description == "SHORTCUT_DETECT_KERNELS=avx3 is not a kernel level: use avx512, avx2 or portable (this CPU runs portable)")
        let missing = KernelSelectionError(value: "avx512", supported: [.avx2, .portable])
        #expect(missing.description == "SHORTCUT_DETECT_KERNELS=avx512: this CPU does not run the avx512 kernels (it runs avx2, portable)")
    }
}

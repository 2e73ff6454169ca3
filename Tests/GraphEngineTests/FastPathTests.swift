import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import Testing

/// Each fast path (fusion, batch-merged products, Winograd, the MaxPool and erf kernels) against
/// the plain kernel or exact math: a shortcut may change a result by rounding only.
@Suite struct FastPathTests {
    /// `x → Conv → Relu → Conv(1×1) → Add(with the Relu) → Relu`: both fusable pairs of a ResNet block.
    func residualBlock() throws -> Executor {
        let model = makeModel(
            [
                Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                Node(name: "project", opType: "Conv", inputs: ["r", "w2"], outputs: ["d"]),
                Node(name: "add", opType: "Add", inputs: ["d", "r"], outputs: ["e"]),
                Node(name: "relu2", opType: "Relu", inputs: ["e"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(4), .fixed(6), .fixed(6)])], outputs: ["y"],
            initializers: [
                "w": try signed([5, 4, 3, 3], seed: 1), "b": try signed([5], seed: 2), "w2": try signed([5, 5, 1, 1], seed: 3),
            ])
        return try Executor(model: model)
    }

    /// float32 values of both signs, so the ReLUs cut.
    func signed(_ shape: [Int], seed: UInt64) throws -> Tensor {
        let magnitudes = try randomTensor(shape, seed: seed).scalars(as: Double.self)
        return try Tensor(shape: shape, scalars: magnitudes.enumerated().map { Float($0.offset % 3 == 0 ? -$0.element : $0.element) })
    }

    @Test func fusedActivationsEqualTheNodesRunApart() throws {
        let executor = try residualBlock()
        let x = try signed([3, 4, 6, 6], seed: 4)
        // Fetching the intermediates keeps both pairs apart; fetching only `y` fuses them.
        let apart = try #require(try executor.run(["x": x], fetch: ["y", "c", "e"])["y"])
        let fused = try #require(try executor.run(["x": x])["y"])
        // Same products, then the same bias add and max per element: bit for bit.
        #expect(try fused.scalars(as: Float.self) == apart.scalars(as: Float.self))
        #expect(try fused.scalars(as: Float.self).contains(0))
    }

    /// Residual sums taken into the convolution before them: a bottleneck's last 1×1 convolution
    /// plus a projection of the block's input that the graph computes after it (as the exporters
    /// order a downsampling block), then ReLU; a 3×3 one (Winograd's transform) plus its own
    /// input, then ReLU; a 1×1 one plus a broadcast constant, which runs as written.
    func residualSums() throws -> Executor {
        let model = makeModel(
            [
                Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                Node(name: "expand", opType: "Conv", inputs: ["r", "w2", "b2"], outputs: ["d"]),
                Node(name: "downsample", opType: "Conv", inputs: ["x", "w3"], outputs: ["s"]),
                Node(name: "add", opType: "Add", inputs: ["s", "d"], outputs: ["e"]),
                Node(name: "relu2", opType: "Relu", inputs: ["e"], outputs: ["y"]),
                Node(name: "conv3", opType: "Conv", inputs: ["y", "w4"], outputs: ["f"], attributes: ["pads": .ints([1, 1, 1, 1])]),
                Node(name: "add2", opType: "Add", inputs: ["f", "y"], outputs: ["g"]),
                Node(name: "relu3", opType: "Relu", inputs: ["g"], outputs: ["h"]),
                Node(name: "conv4", opType: "Conv", inputs: ["h", "w5"], outputs: ["k"]),
                Node(name: "add3", opType: "Add", inputs: ["k", "offsets"], outputs: ["z"]),
            ],
            inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(4), .fixed(10), .fixed(10)])], outputs: ["z"],
            initializers: [
                "w": try signed([8, 4, 3, 3], seed: 11), "b": try signed([8], seed: 12), "w2": try signed([8, 8, 1, 1], seed: 13),
                "b2": try signed([8], seed: 14), "w3": try signed([8, 4, 1, 1], seed: 15), "w4": try signed([8, 8, 3, 3], seed: 16),
                "w5": try signed([8, 8, 1, 1], seed: 17), "offsets": try signed([8, 1, 1], seed: 18),
            ])
        return try Executor(model: model)
    }

    /// Batch 1 runs the product path, batch 3 the batch-merged one (10×10 maps).
    @Test(arguments: [1, 3])
    func residualSumsInTheProductEqualTheNodesRunApart(_ batch: Int) throws {
        let executor = try residualSums()
        let x = try signed([batch, 4, 10, 10], seed: 19)
        let kinds = try executor.profile(["x": x]).map(\.opType)
        #expect(kinds.filter { $0 == "Conv+Add+Relu" }.count == 2 && kinds.contains("Conv+Add"), "\(kinds)")
        let apart = try #require(try executor.run(["x": x], fetch: ["z", "y", "d", "f", "k"]))
        let fused = try #require(try executor.run(["x": x], fetch: ["z", "y"]))
        // The same products, then the same bias add, residual add and max per element: bit for bit.
        for name in ["z", "y"] {
            #expect(try #require(fused[name]).scalars(as: Float.self) == #require(apart[name]).scalars(as: Float.self), "\(name)")
        }
        #expect(try #require(fused["y"]).scalars(as: Float.self).contains(0))
    }

    /// `x → MatMul(W) → Add(bias) → h → Div(√2) → Erf → Add(1) → Mul(h) → Mul(0.5) → y`: a
    /// transformer MLP's first half as the exporters write it, constants as `Constant` nodes.
    func mlpHalf() throws -> Executor {
        func constant(_ name: String, _ value: Float) throws -> Node {
            Node(opType: "Constant", inputs: [], outputs: [name], attributes: ["value": .tensor(try Tensor(shape: [], scalars: [value]))])
        }
        return try Executor(model: makeModel(
            [
                Node(opType: "MatMul", inputs: ["x", "w"], outputs: ["p"]),
                Node(opType: "Add", inputs: ["b", "p"], outputs: ["h"]),
                try constant("root2", 1.4142135), try constant("one", 1), try constant("half", 0.5),
                Node(opType: "Div", inputs: ["h", "root2"], outputs: ["d"]),
                Node(opType: "Erf", inputs: ["d"], outputs: ["e"]),
                Node(opType: "Add", inputs: ["e", "one"], outputs: ["a"]),
                Node(opType: "Mul", inputs: ["h", "a"], outputs: ["m"]),
                Node(opType: "Mul", inputs: ["m", "half"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(13), .fixed(30)])], outputs: ["y"],
            initializers: ["w": try signed([30, 40], seed: 40), "b": try signed([40], seed: 41)]))
    }

    @Test(arguments: [1, 2])
    func fusedLinearBiasAndGELUEqualTheNodesRunApart(_ batch: Int) throws {
        // 13 rows (B read in place, or by BLAS on the portable level; the bias added after) and 26
        // (B packed once, the bias in the product's stores).
        let executor = try mlpHalf()
        let x = try signed([batch, 13, 30], seed: 42)
        let kinds = Set(try executor.profile(["x": x]).map(\.opType))
        #expect(kinds.isSuperset(of: ["MatMul+Add", "Gelu"]), "\(kinds)")
        let apart = try #require(try executor.run(["x": x], fetch: ["y", "p", "d", "e", "a", "m"])["y"])
        let fused = try #require(try executor.run(["x": x])["y"])
        // The same operations in the same order: bit for bit.
        #expect(try fused.scalars(as: Float.self) == apart.scalars(as: Float.self))
        #expect(try fused.scalars(as: Float.self).contains { $0 < 0 })  // GELU's negative lobe
    }

    /// A batch of 1×1 convolutions (12×12 maps: each thread multiplies its own samples) and of
    /// 3×3 ones on 5×5 maps (merged, per thread; with more threads than samples, across them),
    /// against one sample at a time.
    @Test(arguments: [(1, 12, 0), (3, 5, 0), (3, 5, 8)])
    func batchedConvolutionsEqualOneSampleAtATime(kernel: Int, size: Int, threads: Int) throws {
        let executor = try Executor(model: makeModel(
            [
                Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: ["pads": .ints([kernel / 2, kernel / 2, kernel / 2, kernel / 2])]),
                Node(opType: "Relu", inputs: ["c"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(6), .fixed(size), .fixed(size)])], outputs: ["y"],
            initializers: ["w": try signed([20, 6, kernel, kernel], seed: 51), "b": try signed([20], seed: 52)]))
        let x = try signed([3, 6, size, size], seed: 53)
        let width = Parallel.width
        if threads > 0 { Parallel.setWidth(threads) }
        defer { Parallel.setWidth(width) }
        let batched = try expectBatchEqualsOneSampleAtATime(executor, x)
        #expect(batched.contains(0) && batched.contains { $0 > 0 })
    }

    /// `executor`'s output `y` for the batch `x`, expected to equal the outputs of its samples run
    /// one at a time. Each output here is a float32 dot product of at most 54 terms (6 channels by
    /// 3×3); a different product shape may sum in another order, moving a value by a few units in
    /// the last place: 1e-5 of the largest magnitude covers 54 roundings of 6e-8 with room, and a
    /// misplaced sample or filter would be off by the values themselves.
    @discardableResult
    func expectBatchEqualsOneSampleAtATime(_ executor: Executor, _ x: Tensor) throws -> [Float] {
        let batched = try #require(try executor.run(["x": x])["y"]).scalars(as: Float.self)
        var single: [Float] = []
        for n in 0..<x.shape[0] {
            single += try #require(try executor.run(["x": try x.sliced(axis: 0, n..<n + 1)])["y"]).scalars(as: Float.self)
        }
        let largest = batched.map(abs).max() ?? 0
        #expect(batched.count == single.count)
        #expect(zip(batched, single).allSatisfy { abs($0 - $1) <= 1e-5 * largest })
        return batched
    }

    @Test func batchMergedConvolutionEqualsOneSampleAtATime() throws {
        try expectBatchEqualsOneSampleAtATime(try residualBlock(), try signed([3, 4, 6, 6], seed: 5))
    }

    /// Input `[N, 8, H, W]` and the output shape the pads (1, 0, 2, 1) give: 9 × 8 tiles, and a
    /// map 35 tiles wide (runs of 16 + 16 + 3 tiles in the vector transforms).
    static let winogradInputs: [(input: [Int], output: [Int])] = [
        ([3, 8, 17, 16], [3, 8, 18, 15]), ([1, 8, 37, 70], [1, 8, 38, 69]),
    ]

    @Test(arguments: 0..<winogradInputs.count)
    func winogradConvolutionMatchesTheDirectSumInDoublePrecision(_ index: Int) throws {
        // 3×3, stride 1, 8 channels and filters, odd output width and asymmetric pads (partial
        // tiles on two sides), with bias and a fused ReLU: float32 takes the Winograd path,
        // float64 the im2col one.
        func executor(_ dtype: DType) throws -> Executor {
            try Executor(model: makeModel(
                [
                    Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: ["pads": .ints([1, 0, 2, 1])]),
                    Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["y"]),
                ],
                inputs: [ValueInfo(name: "x", elementType: dtype, shape: [.symbolic("N"), .fixed(8), .symbolic("H"), .symbolic("W")])],
                outputs: ["y"],
                initializers: [
                    "w": try signed([8, 8, 3, 3], seed: 7).converted(to: dtype), "b": try signed([8], seed: 8).converted(to: dtype),
                ]))
        }
        let (inputShape, outputShape) = Self.winogradInputs[index]
        let x = try signed(inputShape, seed: 9)
        let winograd = try #require(try executor(.float32).run(["x": x])["y"])
        let exact = try #require(try executor(.float64).run(["x": x.converted(to: .float64)])["y"])
        #expect(winograd.shape == outputShape)
        let ours = try winograd.scalars(as: Float.self)
        let reference = try exact.scalars(as: Double.self)
        let largest = reference.map(abs).max() ?? 0
        // 72-term sums of float32 products plus the transforms' few additions: a handful of
        // roundings of 6e-8 each, well inside 1e-5 of the largest output; a wrong tap, tile or
        // transform entry is off by the size of the values.
        #expect(zip(ours, reference).allSatisfy { abs(Double($0) - $1) <= 1e-5 * largest })
        #expect(ours.contains(0) && largest > 0)
    }

    /// Layers with many output positions and a deep patch run as one pipeline per thread (each
    /// run of positions: its columns, then its product, the residual and ReLU in the stores);
    /// a 7×7 map (49 columns in vectors of 16) splits its products over the threads, pointwise
    /// and through columns. Against the same graph in float64, within the rounding bound of the
    /// float32 sums.
    @Test(arguments: [
        (kernel: 7, stride: 2, pad: 3, size: 40, batch: 2, filters: 8), (kernel: 5, stride: 1, pad: 2, size: 20, batch: 4, filters: 8),
        (kernel: 1, stride: 1, pad: 0, size: 7, batch: 1, filters: 32), (kernel: 3, stride: 2, pad: 1, size: 14, batch: 1, filters: 32),
    ])
    func convolutionPathsMatchDoublePrecision(_ c: (kernel: Int, stride: Int, pad: Int, size: Int, batch: Int, filters: Int)) throws {
        let out = (c.size + 2 * c.pad - c.kernel) / c.stride + 1
        func executor(_ dtype: DType, magnitudes: Bool = false) throws -> Executor {
            func values(_ shape: [Int], seed: UInt64) throws -> Tensor {
                let t = try signed(shape, seed: seed)
                return try (magnitudes ? Tensor(shape: shape, scalars: t.scalars(as: Float.self).map(abs)) : t).converted(to: dtype)
            }
            let pads = Attribute.ints(Array(repeating: c.pad, count: 4))
            return try Executor(model: makeModel(
                [
                    Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                         attributes: ["pads": pads, "strides": .ints([c.stride, c.stride])]),
                    Node(name: "add", opType: "Add", inputs: ["c", "r"], outputs: ["s"]),
                    Node(name: "relu", opType: "Relu", inputs: ["s"], outputs: ["y"]),
                ],
                inputs: [
                    ValueInfo(name: "x", elementType: dtype, shape: [.symbolic("N"), .fixed(64), .symbolic("H"), .symbolic("W")]),
                    ValueInfo(name: "r", elementType: dtype, shape: [.symbolic("N"), .fixed(c.filters), .symbolic("P"), .symbolic("Q")]),
                ],
                outputs: ["y"],
                initializers: [
                    "w": try values([c.filters, 64, c.kernel, c.kernel], seed: 30), "b": try values([c.filters], seed: 31),
                ]))
        }
        let x = try signed([c.batch, 64, c.size, c.size], seed: 32)
        let r = try signed([c.batch, c.filters, out, out], seed: 33)
        let float32 = try executor(.float32)
        let kinds = try float32.profile(["x": x, "r": r]).map(\.opType)
        #expect(kinds == ["Conv+Add+Relu"], "\(kinds)")
        let ours = try #require(try float32.run(["x": x, "r": r])["y"]).scalars(as: Float.self)
        let exact = try #require(try executor(.float64).run(["x": x.converted(to: .float64), "r": r.converted(to: .float64)])["y"])
            .scalars(as: Double.self)
        // The same sums over magnitudes: Σ|w x| + |b| + |r| per output.
        func magnitudes(_ t: Tensor) throws -> Tensor { try Tensor(shape: t.shape, scalars: t.scalars(as: Float.self).map { Double(abs($0)) }) }
        let scale = try #require(try executor(.float64, magnitudes: true).run(["x": magnitudes(x), "r": magnitudes(r)])["y"])
            .scalars(as: Double.self)
        // A chain of n float32 multiply-adds, then two additions, errs by at most (n + 2) units of
        // 2⁻²⁴ of the sum of magnitudes; a wrong tap, run or residual is off by the values themselves.
        let terms = Double(64 * c.kernel * c.kernel + 2)
        #expect(ours.count == c.batch * c.filters * out * out && exact.count == ours.count)
        #expect(zip(zip(ours, exact), scale).allSatisfy { pair, bound in abs(Double(pair.0) - pair.1) <= terms * 0x1p-24 * bound })
        #expect(ours.contains(0) && ours.contains { $0 > 0 })
    }

    @Test func productsWithAnInitializerRightOperandMatchDoublePrecision() throws {
        // MatMul over a [2, 13, 30] batch (26 rows: the right operand gets packed where the
        // kernels run) and Gemm with transB and a bias, as Linear layers export: float32 against
        // the same graph in float64. 30-term float32 sums: within 1e-5 of the largest output.
        func executor(_ dtype: DType) throws -> Executor {
            try Executor(model: makeModel(
                [
                    Node(opType: "MatMul", inputs: ["x", "w"], outputs: ["h"]),
                    Node(opType: "Reshape", inputs: ["h", "shape"], outputs: ["flat"]),
                    Node(opType: "Gemm", inputs: ["flat", "v", "c"], outputs: ["y"], attributes: ["transB": .int(1)]),
                ],
                inputs: [ValueInfo(name: "x", elementType: dtype, shape: [.fixed(2), .fixed(13), .fixed(30)])],
                outputs: ["y"],
                initializers: [
                    "w": try signed([30, 50], seed: 20).converted(to: dtype),
                    "shape": try Tensor(shape: [2], scalars: [Int64(26), 50]),
                    "v": try signed([70, 50], seed: 21).converted(to: dtype),
                    "c": try signed([70], seed: 22).converted(to: dtype),
                ]))
        }
        let x = try signed([2, 13, 30], seed: 23)
        let ours = try #require(try executor(.float32).run(["x": x])["y"]).scalars(as: Float.self)
        let exact = try #require(try executor(.float64).run(["x": x.converted(to: .float64)])["y"]).scalars(as: Double.self)
        let largest = exact.map(abs).max() ?? 0
        #expect(ours.count == 26 * 70 && largest > 0)
        #expect(zip(ours, exact).allSatisfy { abs(Double($0) - $1) <= 1e-5 * largest })
    }

    @Test func reluKeepsNaNWhetherFusedOrNot() throws {
        // `a = x + x` then ReLU: fused when only `y` is fetched, two nodes when `a` is fetched too.
        let input = ValueInfo(name: "x", shape: [.fixed(4)])
        let executor = try Executor(model: makeModel(
            [
                Node(name: "add", opType: "Add", inputs: ["x", "x"], outputs: ["a"]),
                Node(name: "relu", opType: "Relu", inputs: ["a"], outputs: ["y"]),
            ], inputs: [input], outputs: ["y"]))
        let x = try Tensor(shape: [4], scalars: [Float.nan, -1, 2, -0.5])
        for fetch in [["y"], ["y", "a"]] {
            let y = try #require(try executor.run(["x": x], fetch: fetch)["y"]).scalars(as: Float.self)
            #expect(y[0].isNaN && Array(y[1...]) == [0, 4, 0], "fetching \(fetch)")
        }
    }

    @Test func float32ErfIsWithinSevenUnitsOfDoublePrecision() throws {
        // The float32 Erf (and GELU) kernel evaluates a rational approximation instead of libm's
        // erff. Over 40,001 points of [-6, 6] it must stay within 5e-7 of double-precision erf:
        // its measured worst case is 4.1e-7 (about 7 float ulps near ±1); a wrong coefficient
        // shows up as 1e-4 or worse.
        // A NaN last (the vector kernels' masked tail) must come out NaN.
        let points = (0...40_000).map { Float(-6 + 12 * Double($0) / 40_000) } + [.nan]
        let executor = try Executor(model: makeModel(
            [Node(opType: "Erf", inputs: ["x"], outputs: ["y"])], inputs: [ValueInfo(name: "x", shape: [.fixed(points.count)])],
            outputs: ["y"]))
        let y = try #require(try executor.run(["x": try Tensor(shape: [points.count], scalars: points)])["y"]).scalars(as: Float.self)
        let worst = zip(points, y).dropLast().map { abs(Double($1) - Foundation.erf(Double($0))) }.max() ?? .infinity
        #expect(worst <= 5e-7)
        #expect(y.last?.isNaN == true)
    }

    @Test(arguments: [1, 15, 16, 17, 197])
    func float32SoftmaxIsWithinItsRoundingBoundOfDoublePrecision(_ extent: Int) throws {
        // Rows of logits in [-30, 30) (exp over 26 binades), then a row with a NaN and a row of
        // -inf. Each probability carries the rounding of x − max (an absolute |x − max| · 2⁻²⁴ in
        // exp's argument, the same relative error in its value), exp's own error (at most 2 ulp),
        // the row sum's (extent − 1 roundings) and the division's: a relative error within
        // (|x − max| + extent + 3) · 2⁻²⁴.
        var generator = SeededGenerator(seed: UInt64(extent))
        let rows = 6
        var logits = (0..<rows * extent).map { _ in Float.random(in: -30..<30, using: &generator) }
        logits[(rows - 2) * extent] = .nan
        for i in 0..<extent { logits[(rows - 1) * extent + i] = -.infinity }
        let executor = try Executor(model: makeModel(
            [Node(opType: "Softmax", inputs: ["x"], outputs: ["y"])],
            inputs: [ValueInfo(name: "x", shape: [.fixed(rows), .fixed(extent)])], outputs: ["y"]))
        let y = try #require(try executor.run(["x": try Tensor(shape: [rows, extent], scalars: logits)])["y"])
            .scalars(as: Float.self)
        for row in 0..<rows - 2 {
            let values = logits[row * extent..<(row + 1) * extent].map(Double.init)
            let top = values.max() ?? 0
            let sum = values.map { Foundation.exp($0 - top) }.reduce(0, +)
            for (i, value) in values.enumerated() {
                let exact = Foundation.exp(value - top) / sum
                let error = abs(Double(y[row * extent + i]) - exact)
                let bound = (abs(value - top) + Double(extent + 3)) * 0x1p-24
                #expect(error <= bound * exact + Double(Float.leastNormalMagnitude), "row \(row) element \(i)")
            }
        }
        #expect(y[(rows - 2) * extent..<(rows - 1) * extent].allSatisfy { $0.isNaN })
        #expect(y.suffix(extent).allSatisfy { $0.isNaN })  // 0/0, as the Swift kernel gives
    }

    @Test(arguments: ["Erf", "Gelu"])
    func float32ErfAndGELUGradientsMatchDoublePrecision(_ op: String) throws {
        // ∂L/∂x = g · f′(x) over [-6, 6] with a seeded upstream gradient g: float32 (the vector
        // kernels where the CPU has them) against the float64 graph. f′ is within a few float
        // roundings (erf's 4.1e-7, exp's 2 ulp) of its value, and |f′| ≤ 1.13 and |g| < 1: 2e-6
        // absolute is loose for that and tight for a wrong term (GELU's x φ(x) is up to 0.24).
        let count = 4_097  // not a multiple of 16: the masked tail runs too
        let points = (0..<count).map { Float(-6 + 12 * Double($0) / Double(count - 1)) }
        var generator = SeededGenerator(seed: 31)
        let upstream = (0..<count).map { _ in Float.random(in: -1..<1, using: &generator) }
        func gradient(_ dtype: DType) throws -> [Double] {
            let executor = try Executor(model: makeModel(
                [Node(opType: op, inputs: ["x"], outputs: ["y"])],
                inputs: [ValueInfo(name: "x", elementType: dtype, shape: [.fixed(count)])], outputs: ["y"], opset: 20))
            let g = try Tensor(shape: [count], scalars: upstream).converted(to: dtype)
            let result = try executor.gradients(
                ["x": try Tensor(shape: [count], scalars: points).converted(to: dtype)], seed: { _ in g }, wrt: ["x"])
            return try #require(result.gradients["x"]).converted(to: .float64).scalars(as: Double.self)
        }
        let ours = try gradient(.float32)
        let exact = try gradient(.float64)
        #expect(zip(ours, exact).allSatisfy { abs($0 - $1) <= 2e-6 })
    }

    /// Every permutation of `[1, 4, 1, 3]`: those that move only the unit axes share the input's
    /// storage (its elements stay in place), the others copy; both against the index arithmetic
    /// of the definition, `y[i₀, i₁, i₂, i₃] = x[j]` with `j`'s axis `perm[k]` at `iₖ`.
    /// Every permutation against the definition's index arithmetic: one that moves only axes of
    /// extent 1 (a reshape), and one large enough that the threads split it and that swapping the
    /// last two axes takes tiles of sixteen lines, with a partial tile (21 = 16 + 5).
    @Test(arguments: [[1, 4, 1, 3], [3, 40, 35, 21]])
    func transposesEqualTheDefinition(shape: [Int]) throws {
        let x = try signed(shape, seed: 11)
        let values = try x.scalars(as: Float.self)
        func permutations(_ items: [Int]) -> [[Int]] {
            items.isEmpty ? [[]] : items.flatMap { first in permutations(items.filter { $0 != first }).map { [first] + $0 } }
        }
        let strides = Shape.strides(shape)
        for perm in permutations([0, 1, 2, 3]) {
            let executor = try Executor(model: makeModel(
                [Node(opType: "Transpose", inputs: ["x"], outputs: ["y"], attributes: ["perm": .ints(perm)])],
                inputs: [ValueInfo(name: "x", shape: shape.map { .fixed($0) })], outputs: ["y"]))
            let y = try #require(try executor.run(["x": x])["y"])
            let outShape = perm.map { shape[$0] }
            var expected: [Float] = []
            for i0 in 0..<outShape[0] { for i1 in 0..<outShape[1] { for i2 in 0..<outShape[2] { for i3 in 0..<outShape[3] {
                let index = [i0, i1, i2, i3]
                expected.append(values[(0..<4).reduce(0) { $0 + index[$1] * strides[perm[$1]] }])
            } } } }
            #expect(y.shape == outShape, "\(perm)")
            #expect(try y.scalars(as: Float.self) == expected, "\(perm)")
        }
    }

    /// Gather of one entry against the definition: a block shared with the input (axis 0 of
    /// `[3, 100, 300]`), one copied because it starts off a 64-byte boundary (`[3, 100, 301]`), and
    /// 100 rows of 1.2 kB that the threads split (axis 1 of `[100, 3, 300]`).
    @Test(arguments: [([3, 100, 300], 0, 2), ([3, 100, 300], 0, -3), ([3, 100, 301], 0, 1), ([100, 3, 300], 1, -1)])
    func gathersOfOneEntryEqualTheDefinition(shape: [Int], axis: Int, index: Int) throws {
        let x = try signed(shape, seed: 5)
        let values = try x.scalars(as: Float.self)
        let executor = try Executor(model: makeModel(
            [Node(opType: "Gather", inputs: ["x", "i"], outputs: ["y"], attributes: ["axis": .int(axis)])],
            inputs: [ValueInfo(name: "x", shape: shape.map { .fixed($0) })], outputs: ["y"],
            initializers: ["i": Tensor(scalar: Int64(index))]))
        let y = try #require(try executor.run(["x": x])["y"])
        let picked = index < 0 ? index + shape[axis] : index
        var expected: [Float] = []
        for i0 in 0..<shape[0] { for i1 in 0..<shape[1] where [i0, i1][axis] == picked { for i2 in 0..<shape[2] {
            expected.append(values[(i0 * shape[1] + i1) * shape[2] + i2])
        } } }
        #expect(y.shape == shape.enumerated().filter { $0.offset != axis }.map(\.element))
        #expect(try y.scalars(as: Float.self) == expected)
    }

    /// Concat and Split along the first axis move one large block per part (split over the
    /// threads by bytes) or share it; both against the definition.
    @Test func concatAndSplitOfLargeBlocksEqualTheDefinition() throws {
        let (a, b) = (try signed([1, 30_000], seed: 3), try signed([1, 20_000], seed: 4))
        let joined = try Executor(model: makeModel(
            [Node(opType: "Concat", inputs: ["a", "b"], outputs: ["y"], attributes: ["axis": .int(1)])],
            inputs: [ValueInfo(name: "a", shape: [.fixed(1), .fixed(30_000)]), ValueInfo(name: "b", shape: [.fixed(1), .fixed(20_000)])],
            outputs: ["y"]))
        let y = try #require(try joined.run(["a": a, "b": b])["y"])
        #expect(try y.scalars(as: Float.self) == a.scalars(as: Float.self) + b.scalars(as: Float.self))
        let split = try Executor(model: makeModel(
            [Node(opType: "Split", inputs: ["y", "sizes"], outputs: ["p", "q"], attributes: ["axis": .int(1)])],
            inputs: [ValueInfo(name: "y", shape: [.fixed(1), .fixed(50_000)])], outputs: ["p", "q"],
            initializers: ["sizes": Tensor(shape: [2], scalars: [Int64(30_000), 20_000])]))
        let parts = try split.run(["y": y])
        #expect(try #require(parts["p"]).scalars(as: Float.self) == a.scalars(as: Float.self))
        #expect(try #require(parts["q"]).scalars(as: Float.self) == b.scalars(as: Float.self))
    }

    /// Float32 LayerNormalization at this level against the definition in double precision: rows
    /// of 768 (whole vectors of eight) and of 37 (a tail of five), enough rows that the threads
    /// split them, the mean and inverse deviation outputs too. Within 2e-6 of the output's scale:
    /// the statistics are summed in double, so only the final roundings to float remain.
    @Test(arguments: [768, 37])
    func layerNormalizationEqualsTheDefinition(size: Int) throws {
        let rows = 50
        let x = try signed([rows, size], seed: 21)
        let (gamma, beta) = (try signed([size], seed: 22), try signed([size], seed: 23))
        let executor = try Executor(model: makeModel(
            [Node(opType: "LayerNormalization", inputs: ["x", "g", "b"], outputs: ["y", "mean", "inverse"],
                attributes: ["axis": .int(-1), "epsilon": .float(1e-6)])],
            inputs: [ValueInfo(name: "x", shape: [.fixed(rows), .fixed(size)])], outputs: ["y", "mean", "inverse"],
            initializers: ["g": gamma, "b": beta]))
        let outputs = try executor.run(["x": x])
        let (y, mean, inverse) = (
            try #require(outputs["y"]).scalars(as: Float.self), try #require(outputs["mean"]).scalars(as: Float.self),
            try #require(outputs["inverse"]).scalars(as: Float.self))
        let (values, g, b) = (try x.scalars(as: Float.self), try gamma.scalars(as: Float.self), try beta.scalars(as: Float.self))
        for row in 0..<rows {
            let slice = values[row * size..<(row + 1) * size].map(Double.init)
            let m = slice.reduce(0, +) / Double(size)
            let s = 1 / (slice.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(size) + 1e-6).squareRoot()
            #expect(abs(Double(mean[row]) - m) <= 1e-6 * max(1, abs(m)))
            #expect(abs(Double(inverse[row]) - s) <= 1e-6 * s)
            for i in 0..<size {
                let expected = (slice[i] - m) * s * Double(g[i]) + Double(b[i])
                #expect(abs(Double(y[row * size + i]) - expected) <= 2e-6 * max(1, abs(expected)), "row \(row) column \(i)")
            }
        }
    }

    /// MaxPool of `x` without indices (the float32 fast kernel) and with them (the general kernel).
    func maxPoolFastAndGeneral(_ x: Tensor, _ window: [String: Attribute]) throws -> (fast: Tensor, general: Tensor) {
        let input = ValueInfo(name: "x", shape: x.shape.map { .fixed($0) })
        let plain = try Executor(model: makeModel(
            [Node(opType: "MaxPool", inputs: ["x"], outputs: ["y"], attributes: window)], inputs: [input], outputs: ["y"]))
        let withIndices = try Executor(model: makeModel(
            [Node(opType: "MaxPool", inputs: ["x"], outputs: ["y", "i"], attributes: window)], inputs: [input], outputs: ["y", "i"]))
        return (try #require(try plain.run(["x": x])["y"]), try #require(try withIndices.run(["x": x])["y"]))
    }

    @Test func maxPoolWithoutIndicesEqualsTheGeneralKernel() throws {
        let x = try signed([2, 3, 9, 8], seed: 6)
        let window: [String: Attribute] = [
            "kernel_shape": .ints([3, 2]), "strides": .ints([2, 3]), "pads": .ints([1, 0, 1, 1]),
            "dilations": .ints([1, 2]), "ceil_mode": .int(1),
        ]
        let (fast, general) = try maxPoolFastAndGeneral(x, window)
        #expect(fast.shape == general.shape)
        #expect(try fast.scalars(as: Float.self) == general.scalars(as: Float.self))
    }

    /// The vector kernels (a whole row's inner columns at the AVX levels, blocks of sixteen in
    /// Swift at the portable one; stride 1 and 2, ResNet's 3×3 stride-2 stem pool over 112
    /// columns among them) give the general kernel's bits, NaN and signed zeros included, and
    /// leave no column out at the edges or in a row's last, partial vector.
    @Test(arguments: [
        (kernel: 3, stride: 2, pad: 1, width: 71), (kernel: 3, stride: 1, pad: 1, width: 40), (kernel: 2, stride: 2, pad: 0, width: 66),
        (kernel: 3, stride: 2, pad: 1, width: 112), (kernel: 2, stride: 1, pad: 0, width: 37),
    ])
    func maxPoolVectorBlocksEqualTheGeneralKernel(_ c: (kernel: Int, stride: Int, pad: Int, width: Int)) throws {
        // Negative values with zeros of both signs in between, so that windows' maxima are often
        // ties between +0 and -0 (which tap wins shows in the bits), and a few NaNs.
        var values = try signed([1, 2, 9, c.width], seed: 7).scalars(as: Float.self).map { -abs($0) }
        for i in stride(from: 0, to: values.count, by: 3) { values[i] = i % 2 == 0 ? 0 : -0.0 }
        for i in stride(from: 5, to: values.count, by: 37) { values[i] = .nan }
        let x = try Tensor(shape: [1, 2, 9, c.width], scalars: values)
        let window: [String: Attribute] = [
            "kernel_shape": .ints([c.kernel, c.kernel]), "strides": .ints([c.stride, c.stride]),
            "pads": .ints([c.pad, c.pad, c.pad, c.pad]),
        ]
        let (fast, general) = try maxPoolFastAndGeneral(x, window)
        #expect(fast.shape == general.shape)
        #expect(fast.shape[3] >= 32, "too narrow for two vector blocks")
        #expect(try fast.scalars(as: Float.self).map(\.bitPattern) == general.scalars(as: Float.self).map(\.bitPattern))
    }
}

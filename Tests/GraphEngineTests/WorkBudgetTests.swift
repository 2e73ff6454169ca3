import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// A forward pass inside ``WorkBudget/withLimit(_:_:)`` stops before the node that would spend
/// more multiply-adds than allowed, naming it; the costs are those of the ops' definitions.
@Suite struct WorkBudgetTests {
    /// Two 3×3 convolutions (8 → 16 → 4 channels, padded) on a 1×8×32×32 input, then a max pool.
    static func model() -> (Model, [String: Tensor]) {
        let w1 = try! Tensor(shape: [16, 8, 3, 3], scalars: [Float](repeating: 0.01, count: 16 * 8 * 9))
        let w2 = try! Tensor(shape: [4, 16, 3, 3], scalars: [Float](repeating: 0.01, count: 4 * 16 * 9))
        let pads: Attribute = .ints([1, 1, 1, 1])
        let model = makeModel(
            [
                Node(name: "first", opType: "Conv", inputs: ["x", "w1"], outputs: ["a"], attributes: ["pads": pads]),
                Node(name: "second", opType: "Conv", inputs: ["a", "w2"], outputs: ["b"], attributes: ["pads": pads]),
                Node(name: "pool", opType: "MaxPool", inputs: ["b"], outputs: ["y"], attributes: ["kernel_shape": .ints([2, 2])]),
            ],
            inputs: [ValueInfo(name: "x", elementType: .float32, shape: [.fixed(1), .fixed(8), .fixed(32), .fixed(32)])],
            outputs: ["y"], initializers: ["w1": w1, "w2": w2])
        return (model, ["x": try! Tensor(zeros: .float32, shape: [1, 8, 32, 32])])
    }

    // Filters × positions × (channels × taps) per convolution; outputs × window for the pool.
    static let first = 16 * 32 * 32 * (8 * 9)
    static let second = 4 * 32 * 32 * (16 * 9)
    static let pool = 4 * 31 * 31 * 4

    @Test func aPassWithinTheLimitRuns() throws {
        let (model, feeds) = Self.model()
        let executor = try Executor(model: model)
        let free = try executor.run(feeds)
        let bounded = try WorkBudget.withLimit(Self.first + Self.second + Self.pool) { try executor.run(feeds) }
        let (a, b) = (try #require(bounded["y"]).scalars(as: Float.self), try #require(free["y"]).scalars(as: Float.self))
        #expect(a == b)
    }

    @Test func theNodeThatWouldCrossTheLimitIsNamed() throws {
        let (model, feeds) = Self.model()
        let executor = try Executor(model: model)
        let alone = errorText { try WorkBudget.withLimit(Self.first - 1) { try executor.run(feeds) } }
        #expect(alone == "node 'first' (Conv) failed: it would take \(Self.first) multiply-adds, more than the \(Self.first - 1) this pass may spend", "\(alone)")
        // The costs add up over the pass.
        let limit = Self.first + Self.second + Self.pool - 1
        let sum = errorText { try WorkBudget.withLimit(limit) { try executor.run(feeds) } }
        #expect(sum == "node 'pool' (MaxPool) failed: it would take \(Self.pool) multiply-adds, more than the \(limit) this pass may spend (\(Self.first + Self.second) spent before it)", "\(sum)")
        // Outside a scope nothing is counted.
        _ = try executor.run(feeds)
    }

    /// A product's cost counts every pair of broadcast batch entries: `[2, 1, 3, 4] · [5, 4, 6]`
    /// is ten products of 3 × 4 × 6.
    @Test func broadcastProductsCountEveryBatchEntry() throws {
        let model = makeModel(
            [Node(name: "mm", opType: "MatMul", inputs: ["a", "b"], outputs: ["y"])],
            inputs: [ValueInfo(name: "a", elementType: .float32), ValueInfo(name: "b", elementType: .float32)], outputs: ["y"])
        let executor = try Executor(model: model)
        let feeds = ["a": try Tensor(zeros: .float32, shape: [2, 1, 3, 4]), "b": try Tensor(zeros: .float32, shape: [5, 4, 6])]
        _ = try WorkBudget.withLimit(720) { try executor.run(feeds) }
        #expect(errorText { try WorkBudget.withLimit(719) { try executor.run(feeds) } }.contains("it would take 720 multiply-adds"))
    }

    /// A recurrent layer costs every step of every sequence through both weight matrices; an
    /// attention, each query element against every key, then its weights against the values.
    @Test func recurrentLayersAndAttentionAreCounted() throws {
        // LSTM: 5 steps × 2 sequences × (16 × 3 input weights + 16 × 4 recurrent weights).
        let lstm = makeModel(
            [Node(name: "rnn", opType: "LSTM", inputs: ["x", "w", "r"], outputs: ["y"], attributes: ["hidden_size": .int(4)])],
            inputs: [ValueInfo(name: "x", elementType: .float32)], outputs: ["y"],
            initializers: ["w": try Tensor(zeros: .float32, shape: [1, 16, 3]), "r": try Tensor(zeros: .float32, shape: [1, 16, 4])])
        let x = ["x": try Tensor(zeros: .float32, shape: [5, 2, 3])]
        let recurrent = try Executor(model: lstm)
        _ = try WorkBudget.withLimit(10 * (48 + 64)) { try recurrent.run(x) }
        #expect(errorText { try WorkBudget.withLimit(10 * (48 + 64) - 1) { try recurrent.run(x) } }.contains("node 'rnn' (LSTM) failed: it would take 1120 multiply-adds"))
        // Attention: 2 heads × 3 queries × 4 deep against 5 keys (120), then 6 values deep (180).
        let attention = makeModel(
            [Node(name: "att", opType: "Attention", inputs: ["q", "k", "v"], outputs: ["y"])],
            inputs: ["q", "k", "v"].map { ValueInfo(name: $0, elementType: .float32) }, outputs: ["y"], opset: 23)
        let feeds = [
            "q": try Tensor(zeros: .float32, shape: [1, 2, 3, 4]), "k": try Tensor(zeros: .float32, shape: [1, 2, 5, 4]),
            "v": try Tensor(zeros: .float32, shape: [1, 2, 5, 6]),
        ]
        let heads = try Executor(model: attention)
        _ = try WorkBudget.withLimit(300) { try heads.run(feeds) }
        #expect(errorText { try WorkBudget.withLimit(299) { try heads.run(feeds) } }.contains("node 'att' (Attention) failed: it would take 300 multiply-adds"))
    }

    /// Einsum costs one multiply-add per combination of its labels' extents; LRN, each element's
    /// window of channels (never more than the channels there are).
    @Test func einsumAndLocalResponseNormalizationAreCounted() throws {
        // "bij,bjk->bik" on [2, 3, 4] and [2, 4, 5]: b i j k = 2 · 3 · 4 · 5.
        let einsum = makeModel(
            [Node(name: "e", opType: "Einsum", inputs: ["a", "b"], outputs: ["y"], attributes: ["equation": .string("bij,bjk->bik")])],
            inputs: [ValueInfo(name: "a", elementType: .float32), ValueInfo(name: "b", elementType: .float32)], outputs: ["y"])
        let feeds = ["a": try Tensor(zeros: .float32, shape: [2, 3, 4]), "b": try Tensor(zeros: .float32, shape: [2, 4, 5])]
        let contraction = try Executor(model: einsum)
        _ = try WorkBudget.withLimit(120) { try contraction.run(feeds) }
        #expect(errorText { try WorkBudget.withLimit(119) { try contraction.run(feeds) } }.contains("node 'e' (Einsum) failed: it would take 120 multiply-adds"))
        // A window of 99 over 3 channels: 3 per element of [1, 3, 2, 2].
        let lrn = makeModel(
            [Node(name: "n", opType: "LRN", inputs: ["x"], outputs: ["y"], attributes: ["size": .int(99)])],
            inputs: [ValueInfo(name: "x", elementType: .float32)], outputs: ["y"])
        let x = ["x": try Tensor(zeros: .float32, shape: [1, 3, 2, 2])]
        let normalization = try Executor(model: lrn)
        _ = try WorkBudget.withLimit(36) { try normalization.run(x) }
        #expect(errorText { try WorkBudget.withLimit(35) { try normalization.run(x) } }.contains("node 'n' (LRN) failed: it would take 36 multiply-adds"))
    }
}

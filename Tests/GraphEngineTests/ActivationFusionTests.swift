import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// One Conv layout, chosen so each of Conv's kernels runs (which one depends on the CPU: the
/// packed products where AVX-512 is, the BLAS elsewhere; the suite runs both ways).
struct ConvLayout: Sendable, CustomTestStringConvertible {
    let name: String
    let input: [Int]
    let weights: [Int]
    var attributes: [String: Attribute] = [:]
    var dtype: DType = .float32
    var testDescription: String { name }
}

/// Conv followed by LeakyRelu, HardSigmoid or HardSwish runs as one step, the activation applied
/// to each block the product writes; it must give the two nodes' result bit for bit.
@Suite struct ActivationFusionTests {
    static let layouts: [ConvLayout] = [
        // 3×3 stride 1, 8 channels and filters, 16×17 map: Winograd (a run of tiles ends mid-row).
        ConvLayout(name: "winograd", input: [1, 8, 16, 17], weights: [8, 8, 3, 3], attributes: ["pads": .ints([1, 1, 1, 1])]),
        // 1×1 over a 20×20 map: the packed products (or BLAS, then the epilogue).
        ConvLayout(name: "pointwise", input: [1, 6, 20, 20], weights: [10, 6, 1, 1]),
        // Depthwise 3×3 with stride 2: BLAS per group, then the epilogue.
        ConvLayout(name: "depthwise", input: [1, 6, 11, 11], weights: [6, 1, 3, 3], attributes: ["group": .int(6), "strides": .ints([2, 2])]),
        // A batch of small maps: one product across the batch, scattered with the epilogue.
        ConvLayout(name: "merged batch", input: [3, 5, 6, 6], weights: [7, 5, 2, 2]),
        ConvLayout(name: "float64", input: [2, 8, 9, 9], weights: [8, 8, 3, 3], dtype: .float64),
    ]

    static let activations: [(op: String, attributes: [String: Attribute])] = [
        ("LeakyRelu", [:]), ("LeakyRelu", ["alpha": .float(0.1)]), ("HardSigmoid", [:]),
        ("HardSigmoid", ["alpha": .float(1.0 / 6), "beta": .float(0.5)]), ("HardSwish", [:]), ("Relu", [:]),
    ]

    /// `x → Conv(w, b) → activation → y`, weights and input spread over [-4, 4] so every piece of
    /// each activation is hit.
    func run(_ layout: ConvLayout, _ op: String, _ attributes: [String: Attribute], dtype: DType) throws -> (fused: Tensor, apart: Tensor, kinds: Set<String>) {
        func values(_ shape: [Int], seed: UInt64, scale: Double) throws -> Tensor {
            try randomTensor(shape, seed: seed, dtype: .float64, magnitude: 0...scale).converted(to: dtype)
        }
        let executor = try Executor(model: makeModel(
            [
                Node(opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"], attributes: layout.attributes),
                Node(opType: op, inputs: ["c"], outputs: ["y"], attributes: attributes),
            ],
            inputs: [ValueInfo(name: "x", elementType: dtype)], outputs: ["y"],
            initializers: ["w": try values(layout.weights, seed: 1, scale: 1), "b": try values([layout.weights[0]], seed: 2, scale: 1)],
            opset: 14))
        let x = try values(layout.input, seed: 3, scale: 4)
        let kinds = Set(try executor.profile(["x": x]).map(\.opType))
        // Fetching the Conv's output keeps the two nodes apart; fetching only `y` fuses them.
        let apart = try #require(try executor.run(["x": x], fetch: ["y", "c"])["y"])
        let fused = try #require(try executor.run(["x": x])["y"])
        return (fused, apart, kinds)
    }

    func bits(_ tensor: Tensor) throws -> [UInt64] {
        switch tensor.dtype {
        case .float32: try tensor.scalars(as: Float.self).map { UInt64($0.bitPattern) }
        case .float64: try tensor.scalars(as: Double.self).map(\.bitPattern)
        default: try tensor.scalars(as: Half.self).map { UInt64($0.bits) }
        }
    }

    @Test(arguments: layouts)
    func fusedActivationsEqualTheNodesRunApart(_ layout: ConvLayout) throws {
        for (op, attributes) in Self.activations {
            let (fused, apart, kinds) = try run(layout, op, attributes, dtype: layout.dtype)
            #expect(kinds.contains("Conv+\(op)"), "\(layout.name) \(op): \(kinds)")
            #expect(try bits(fused) == bits(apart), "\(layout.name) \(op) \(attributes.keys.sorted())")
            // Every piece was hit: values in the flat parts and in between.
            let values = try fused.doubles()
            #expect(values.contains { $0 < 0 || $0 == 0 } && values.contains { $0 > 0 }, "\(layout.name) \(op)")
        }
    }

    @Test func float16RunsTheTwoOpsApart() throws {
        // The producer rounds its float32 result to float16 once; the activation must then start
        // from the rounded values, as the two nodes do (rounding does not commute with αx).
        for (op, attributes) in Self.activations {
            let (fused, apart, kinds) = try run(Self.layouts[1], op, attributes, dtype: .float16)
            #expect(kinds.contains("Conv+\(op)"), "\(op): \(kinds)")
            #expect(try bits(fused) == bits(apart), "float16 \(op)")
        }
    }

    @Test func addTakesOnlyRelu() throws {
        // Add fuses ReLU alone; Add then LeakyRelu stays two steps and gives the same values.
        let executor = try Executor(model: makeModel(
            [
                Node(opType: "Add", inputs: ["x", "x"], outputs: ["a"]),
                Node(opType: "LeakyRelu", inputs: ["a"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", shape: [.fixed(4)])], outputs: ["y"]))
        let x = try Tensor(shape: [4], scalars: [Float(-1), 2, -3, 0.5])
        #expect(Set(try executor.profile(["x": x]).map(\.opType)) == ["Add", "LeakyRelu"])
        let apart = try #require(try executor.run(["x": x], fetch: ["y", "a"])["y"])
        #expect(try #require(try executor.run(["x": x])["y"]).scalars(as: Float.self) == apart.scalars(as: Float.self))
    }
}

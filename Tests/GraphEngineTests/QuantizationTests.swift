import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// QuantizeLinear and DequantizeLinear against onnxruntime and onnx's reference evaluator at
/// every opset from 10 to 25, and their straight-through backward against PyTorch's FakeQuantize.
extension QuantizationManifest.Case: CustomTestStringConvertible {
    public var testDescription: String { name }
}

extension QuantizationManifest.StraightThrough: CustomTestStringConvertible {
    public var testDescription: String { name }
}

@Suite struct QuantizationTests {
    static let manifest = QuantizationManifest.committed

    @Test func manifestIsPresent() {
        #expect(Self.manifest?.cases.count == 22)
        #expect(Self.manifest?.ste.count == 3)
        #expect(Self.manifest?.models.count == 2)
    }

    /// Exact: integer outputs must be, and `(x − zero_point) · scale` is one float32 product
    /// (rounded once more to float16 where the output is float16) on both sides.
    @Test(arguments: manifest?.cases ?? [])
    func matchesOnnxruntime(_ golden: QuantizationManifest.Case) throws {
        let mismatches = try GoldenCase(folder: Fixtures.unpacked("quantization/ops.tar.gz").appendingPathComponent(golden.name)).mismatches(absolute: 0, relative: 0)
        #expect(mismatches == [], "\(golden.name)")
    }

    /// A `QuantizeLinear → DequantizeLinear` pair (opset 13) with `scale` and `zero_point` as initializers.
    static func pair(scale: Tensor, zeroPoint: Tensor, axis: Int?, xType: DType = .float32) -> Model {
        let attributes: [String: Attribute] = axis.map { ["axis": .int($0)] } ?? [:]
        let (scaleValue, zeroValue) = axis == nil ? (try? scale.reshaped([]), try? zeroPoint.reshaped([])) : (scale, zeroPoint)
        return Model(
            opsets: ["": 13],
            graph: Graph(
                nodes: [
                    Node(name: "q", opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["q"], attributes: attributes),
                    Node(name: "dq", opType: "DequantizeLinear", inputs: ["q", "s", "z"], outputs: ["y"], attributes: attributes),
                ],
                initializers: ["s": scaleValue ?? scale, "z": zeroValue ?? zeroPoint],
                inputs: [ValueInfo(name: "x", elementType: xType)], outputs: [ValueInfo(name: "y", elementType: nil)]))
    }

    /// The pair's forward equals PyTorch's fake quantization; its gradient equals autograd's
    /// through it (the upstream gradient where the value was not clipped, 0 where it was).
    /// Forward: exact (both compute `round(x / s)` half to even in float32 on these inputs).
    /// Gradient: ours is `(g · s) / s` in float32, within one rounding of PyTorch's `g`: 1e-6 relative.
    @Test(arguments: manifest?.ste ?? [])
    func pairMatchesPyTorchFakeQuantize(_ golden: QuantizationManifest.StraightThrough) throws {
        let x = try golden.tensor("x")
        let model = Self.pair(scale: try golden.tensor("scale"), zeroPoint: try golden.tensor("zero_point"), axis: golden.axis)
        let executor = try Executor(model: model)
        let y = try #require(try executor.run(["x": x])["y"])
        let forward = try TensorComparison(y, try golden.tensor("y"))
        #expect(forward.mismatches == 0, "\(golden.name) forward: \(forward)")
        let upstream = try golden.tensor("upstream")
        let result = try executor.gradients(["x": x], seed: { _ in upstream }, output: "y", wrt: ["x"])
        let expected = try golden.tensor("gradient")
        let gradient = try TensorComparison(try #require(result.gradients["x"]), expected, absolute: 0, relative: 1e-6)
        #expect(gradient.mismatches == 0, "\(golden.name) gradient: \(gradient)")
        // The saturated elements are there and get no gradient.
        #expect(golden.saturatedElements > 0)
        #expect(try result.gradients["x"]?.doubles().filter { $0 == 0 }.count == golden.saturatedElements)
    }

    /// DequantizeLinear alone hands its integer input `g · scale`; QuantizeLinear alone hands
    /// its float input `g / scale` (float16 inputs get a float16 gradient).
    @Test func eachHalfOfThePair() throws {
        let q = try Tensor(shape: [2, 3], scalars: [Int8(-128), -3, 0, 5, 100, 127])
        let scale = try Tensor(shape: [3], scalars: [Float(0.5), 0.25, 2])
        let dequantize = Model(
            opsets: ["": 13],
            graph: Graph(
                nodes: [Node(name: "dq", opType: "DequantizeLinear", inputs: ["q", "s"], outputs: ["y"], attributes: ["axis": .int(1)])],
                initializers: ["s": scale], inputs: [ValueInfo(name: "q", elementType: .int8)],
                outputs: [ValueInfo(name: "y", elementType: nil)]))
        let g = try Tensor(shape: [2, 3], scalars: [Float(1), 2, 3, 4, 5, 6])
        let dq = try Executor(model: dequantize).gradients(["q": q], seed: { _ in g }, wrt: ["q"])
        #expect(try dq.gradients["q"]?.scalars(as: Float.self) == [0.5, 0.5, 6, 2, 1.25, 12])

        let quantize = Model(
            opsets: ["": 19],
            graph: Graph(
                nodes: [Node(name: "q", opType: "QuantizeLinear", inputs: ["x", "s", "z"], outputs: ["y"])],
                initializers: ["s": Tensor(scalar: Half(0.5)), "z": Tensor(scalar: Int8(0))],
                inputs: [ValueInfo(name: "x", elementType: .float16)], outputs: [ValueInfo(name: "y", elementType: nil)]))
        let x = try Tensor(shape: [4], scalars: [Float(1), -70, 63.4, 64]).converted(to: .float16)
        let seed = try Tensor(shape: [4], scalars: [Float(1), 1, 1, 1])
        let executor = try Executor(model: quantize)
        // The seed lands on the int8 output as a float gradient, as a DequantizeLinear would hand it.
        let result = try executor.gradients(["x": x], seed: { _ in seed }, wrt: ["x"])
        let gradient = try #require(result.gradients["x"])
        #expect(gradient.dtype == .float16)
        // x / 0.5 = 2, -140 (clipped), 126.8 → 127 (inside), 128 (clipped).
        #expect(try gradient.converted(to: .float32).scalars(as: Float.self) == [2, 0, 2, 0])
    }

    /// DequantizeLinear is linear in its scale, so that gradient is checked by finite differences
    /// (the harness's float32 step and tolerance), per tensor, per axis and in blocks; the
    /// integer input is held constant.
    @Test func dequantizeScaleGradientByFiniteDifferences() throws {
        var random = SeededRandom(seed: 60)
        let x = try Tensor(shape: [2, 3, 4], scalars: (0..<24).map { _ in Int8(random.uniform(-100...100).rounded()) })
        let zeros = try Tensor(shape: [3], scalars: [Int8(3), -2, 0])
        let cases: [(attributes: [String: Attribute], scale: [Int], zeroPoint: Tensor, opset: Int)] = [
            ([:], [], Tensor(scalar: Int8(-5)), 13),
            (["axis": .int(1)], [3], zeros, 13),
            (["axis": .int(-1), "block_size": .int(3)], [2, 3, 2], try Tensor(shape: [2, 3, 2], scalars: [Int8](repeating: 4, count: 12)), 21),
        ]
        for (attributes, shape, zeroPoint, opset) in cases {
            let scale = try randomTensor(shape, seed: 61, dtype: .float32, magnitude: 0.02...0.08)
            let check = GradientCheck(
                op: "DequantizeLinear", attributes: attributes, inputs: [scale], constants: [(0, x), (2, zeroPoint)],
                opset: opset, positions: [1])
            #expect(try check.run() == [], "\(attributes)")
        }
    }

    /// Bad scales, zero points and attributes are errors that name what is wrong.
    @Test func badInputsAndAttributesAreNamed() throws {
        func failure(_ op: String, opset: Int = 21, _ attributes: [String: Attribute], _ inputs: [Tensor]) -> String {
            let names = ["x", "s", "z"].prefix(inputs.count)
            let model = Model(
                opsets: ["": opset],
                graph: Graph(
                    nodes: [Node(name: "n", opType: op, inputs: Array(names), outputs: ["y"], attributes: attributes)],
                    initializers: [:], inputs: zip(names, inputs).map { ValueInfo(name: $0, elementType: $1.dtype) },
                    outputs: [ValueInfo(name: "y", elementType: nil)]))
            return errorText { try Executor(model: model).run(Dictionary(uniqueKeysWithValues: zip(names, inputs))) }
        }
        let x = try Tensor(shape: [2, 3], scalars: [Float](repeating: 1, count: 6))
        let scale3 = try Tensor(shape: [3], scalars: [Float](repeating: 0.1, count: 3))
        let scale = Tensor(scalar: Float(0.1))
        #expect(failure("QuantizeLinear", [:], [x, scale]) == "no error")
        #expect(failure("QuantizeLinear", opset: 10, [:], [x, scale3]).contains("y_scale must hold one value before opset 13"))
        #expect(failure("QuantizeLinear", [:], [x, try Tensor(shape: [2], scalars: [Float(0.1), 0.2])])
            .contains("per-axis quantization along axis 1 needs a 1-D y_scale of 3 values (x's dimension 1), got shape [2]"))
        #expect(failure("QuantizeLinear", ["axis": .int(2)], [x, scale3]).contains("axis 2 is out of range for input x of shape [2, 3]"))
        #expect(failure("QuantizeLinear", ["block_size": .int(2)], [x, scale3])
            .contains("needs y_scale of shape [2, 2] (x's shape with dimension 1 = ⌈3/2⌉), got [3]"))
        #expect(failure("QuantizeLinear", [:], [x, scale, Tensor(scalar: Int32(0))]).contains("y_zero_point is int32; this engine quantizes to int8 or uint8"))
        #expect(failure("QuantizeLinear", ["output_dtype": .int(4)], [x, scale]).contains("UINT16 (4) is not supported"))
        #expect(failure("QuantizeLinear", ["output_dtype": .int(3)], [x, scale, Tensor(scalar: UInt8(0))])
            .contains("output_dtype is int8 but y_zero_point is uint8"))
        #expect(failure("QuantizeLinear", [:], [x, scale3, try Tensor(shape: [1, 3], scalars: [UInt8](repeating: 0, count: 3))])
            .contains("y_zero_point has shape [1, 3]; it must have y_scale's shape [3]"))
        #expect(failure("QuantizeLinear", [:], [try x.converted(to: .float64), scale]).contains("input x must be float32, float16 or int32, got float64"))
        let q = try Tensor(shape: [2, 3], scalars: [Int8](repeating: 1, count: 6))
        #expect(failure("DequantizeLinear", [:], [q, scale, Tensor(scalar: UInt8(0))]).contains("x_zero_point is uint8 but x is int8"))
        #expect(failure("DequantizeLinear", [:], [x, scale]).contains("input x must be int8, uint8 or int32, got float32"))
        #expect(failure("DequantizeLinear", ["output_dtype": .int(11)], [q, scale]).contains("DOUBLE (11) is not supported"))
    }
}

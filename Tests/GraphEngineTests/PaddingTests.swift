import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Pad: finite-difference checks of the backward rule in every mode (float64, tolerance as stated
/// in GradientCheck), element types, and the errors bad pads give.
@Suite struct PaddingTests {
    /// Runs one Pad node on `x` with `pads` (and the other inputs) at `opset`.
    func pad(
        _ x: Tensor, _ pads: [Int], mode: String = "constant", value: Tensor? = nil, axes: [Int]? = nil, opset: Int = 19
    ) throws -> Tensor {
        var inputs = ["x", "pads", value == nil ? "" : "value"]
        var initializers = ["pads": try int64s(pads)]
        if let value { initializers["value"] = value }
        if let axes {
            inputs.append("axes")
            initializers["axes"] = try int64s(axes)
        }
        let node = Node(name: "pad", opType: "Pad", inputs: inputs, outputs: ["y"], attributes: ["mode": .string(mode)])
        let model = Model(
            opsets: ["": opset],
            graph: Graph(nodes: [node], initializers: initializers, inputs: [ValueInfo(name: "x", elementType: x.dtype)],
                         outputs: [ValueInfo(name: "y", elementType: nil)]))
        return try #require(try Executor(model: model).run(["x": x])["y"])
    }

    @Test(arguments: ["constant", "reflect", "edge", "wrap"])
    func gradientInEveryModeWithCropping(_ mode: String) throws {
        let x = try randomTensor([2, 3, 4], seed: 60)
        // Grow one axis past its length (reflect and wrap then revisit elements), crop another.
        let pads = try int64s([1, -1, 2, 0, 2, 5])
        let check = GradientCheck(op: "Pad", attributes: ["mode": .string(mode)], inputs: [x], constants: [(1, pads)])
        #expect(try check.run() == [])
    }

    @Test func gradientOfTheConstantValueAndWithAxes() throws {
        let x = try randomTensor([2, 3], seed: 61)
        let value = GradientCheck(op: "Pad", inputs: [x, try randomTensor([], seed: 62)], constants: [(1, try int64s([1, 0, 0, 2]))])
            .withPositions([0, 2])
        #expect(try value.run() == [])
        let axes = GradientCheck(
            op: "Pad", attributes: ["mode": .string("reflect")], inputs: [x],
            constants: [(1, try int64s([2, 1])), (3, try int64s([-1]))]
        ).withPositions([0])
        #expect(try axes.run() == [])
        let attribute = GradientCheck(
            op: "Pad", attributes: ["pads": .ints([0, 1, 1, 0]), "mode": .string("edge")], inputs: [x], opset: 10)
        #expect(try attribute.run() == [])
    }

    @Test func float32GradientThroughFloat16() throws {
        // float16 gradients go through the float32 rule and are rounded once.
        let x = try Tensor(shape: [2, 2], scalars: [Float](arrayLiteral: 1, 2, 3, 4)).converted(to: .float16)
        let model = Model(
            opsets: ["": 19],
            graph: Graph(
                nodes: [Node(opType: "Pad", inputs: ["x", "p"], outputs: ["y"], attributes: ["mode": .string("wrap")])],
                initializers: ["p": try int64s([0, 0, 0, 1])], inputs: [ValueInfo(name: "x", elementType: .float16)],
                outputs: [ValueInfo(name: "y", elementType: nil)]))
        let result = try Executor(model: model).gradients(
            ["x": x], seed: { try Tensor(shape: $0.shape, scalars: [Float](repeating: 1, count: $0.count)).converted(to: .float16) },
            output: "y", wrt: ["x"])
        // Each element is copied once more by the wrapped column: x[:, 0] twice.
        #expect(try #require(result.gradients["x"]).converted(to: .float32).scalars(as: Float.self) == [2, 1, 2, 1])
    }

    @Test func everyElementTypeMovesExactly() throws {
        let big = try Tensor(shape: [3], scalars: [Int64(1) << 60 | 1, -7, Int64.max])
        #expect(try pad(big, [1, 1], mode: "edge").scalars(as: Int64.self) == [(1 << 60) | 1, (1 << 60) | 1, -7, .max, .max])
        let flags = try Tensor(shape: [2], scalars: [true, false])
        #expect(try pad(flags, [1, 0], value: Tensor(scalar: true)).scalars(as: Bool.self) == [true, true, false])
        let bytes = try Tensor(shape: [3], scalars: [UInt8(1), 2, 3])
        #expect(try pad(bytes, [0, 4], mode: "reflect").scalars(as: UInt8.self) == [1, 2, 3, 2, 1, 2, 3])
        let half = try Tensor(shape: [2], scalars: [Float(0.5), -2]).converted(to: .float16)
        #expect(try pad(half, [2, 0], mode: "wrap").converted(to: .float32).scalars(as: Float.self) == [0.5, -2, 0.5, -2])
        let scalar = try pad(Tensor(scalar: Float(3)), [])
        #expect(scalar.shape == [])
        #expect(try scalar.scalars(as: Float.self) == [3])
    }

    @Test func badPadsGiveErrorsNamingTheNode() throws {
        let x = try Tensor(shape: [2, 3], scalars: [Float](repeating: 1, count: 6))
        #expect(errorText { try pad(x, [1, 1, 1]) }.contains("needs 4 pads"))
        #expect(errorText { try pad(x, [0, -4, 0, 0]) }.contains("invalid extent"))
        #expect(try pad(x, [0, -3, 0, 0]).shape == [2, 0])
        #expect(errorText { try pad(x, [0, -3, 0, 1], mode: "edge") }.contains("non-empty axis 1"))
        #expect(errorText { try pad(x, [0, Int(Int64.max), 0, 1]) }.contains("out of range"))
        #expect(errorText { try pad(x, [0, Int(Int64.min), 0, Int(Int64.max)]) }.contains("out of range"))
        #expect(errorText { try pad(x, [1, 1 << 40, 1, 1 << 40]) }.contains("node 'pad'"))
        #expect(errorText { try pad(x, [1, 1], axes: [1, -1]) }.contains("repeat an axis"))
        #expect(errorText { try pad(x, [1, 1], mode: "mirror") }.contains("mode"))
        #expect(errorText { try pad(x, [0, 0, 0, 0], value: Tensor(shape: [2], scalars: [Float(1), 2])) }.contains("one value"))
    }
}

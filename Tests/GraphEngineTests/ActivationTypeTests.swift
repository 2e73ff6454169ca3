import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// One op and the element types the ONNX spec allows it among ours (opsets 7-25, plus Celu's
/// float16/float64 from opset 28).
struct TypedOp: Sendable, CustomTestStringConvertible {
    let op: String
    let types: [DType]
    var inputs = 1
    var opset = 22
    var testDescription: String { op }
}

private let floats: [DType] = [.float32, .float16, .float64]
private let numeric: [DType] = floats + [.int64, .int32, .int8, .uint8]

/// Every op runs on every element type it allows, each type's kernel (float32's specialized
/// loops, the generic ones, float16 through float32) agreeing with the float64 result, and
/// rejects the types it does not allow with an error that names it.
@Suite struct ActivationTypeTests {
    static let ops: [TypedOp] = [
        TypedOp(op: "HardSigmoid", types: floats), TypedOp(op: "HardSwish", types: floats),
        TypedOp(op: "LeakyRelu", types: floats), TypedOp(op: "PRelu", types: floats + [.int32, .int64], inputs: 2),
        TypedOp(op: "Elu", types: floats), TypedOp(op: "Selu", types: floats), TypedOp(op: "Celu", types: floats, opset: 28),
        TypedOp(op: "Softplus", types: floats), TypedOp(op: "Softsign", types: floats), TypedOp(op: "Mish", types: floats),
        TypedOp(op: "ThresholdedRelu", types: floats), TypedOp(op: "Shrink", types: numeric),
        TypedOp(op: "Abs", types: numeric), TypedOp(op: "Log", types: floats), TypedOp(op: "Reciprocal", types: floats),
        TypedOp(op: "Floor", types: floats), TypedOp(op: "Ceil", types: floats), TypedOp(op: "Round", types: floats),
        TypedOp(op: "Sign", types: numeric), TypedOp(op: "Sin", types: floats), TypedOp(op: "Cos", types: floats),
        TypedOp(op: "Max", types: numeric, inputs: 2), TypedOp(op: "Min", types: numeric, inputs: 2),
        TypedOp(op: "Sum", types: floats, inputs: 2), TypedOp(op: "Mean", types: floats, inputs: 2),
        TypedOp(op: "Greater", types: numeric, inputs: 2), TypedOp(op: "Less", types: numeric, inputs: 2),
        TypedOp(op: "GreaterOrEqual", types: numeric, inputs: 2), TypedOp(op: "LessOrEqual", types: numeric, inputs: 2),
        TypedOp(op: "IsNaN", types: floats), TypedOp(op: "IsInf", types: floats), TypedOp(op: "LogSoftmax", types: floats),
    ]

    /// Values every type holds exactly (uint8 gets the non-negative ones), avoiding Log's and
    /// Reciprocal's poles; the second input of a binary op is the first reversed.
    func values(_ op: String, _ type: DType) -> [Double] {
        if op == "Log" || op == "Reciprocal" { return [0.25, 0.5, 1, 1.5, 2, 3, 4.5] }
        if type == .uint8 { return [0, 1, 2, 3, 5, 7, 9] }
        return type.isFloatingPoint ? [-3, -2.5, -0.75, 0, 0.5, 1.25, 4] : [-3, -2, -1, 0, 1, 2, 4]
    }

    func run(_ test: TypedOp, _ type: DType) throws -> (Tensor, Tensor) {
        let x = values(test.op, type)
        let inputs = [x, x.reversed()].prefix(test.inputs)
        let executor = try Executor(model: makeModel(
            [Node(opType: test.op, inputs: (0..<test.inputs).map { "x\($0)" }, outputs: ["y"])],
            inputs: (0..<test.inputs).map { ValueInfo(name: "x\($0)", elementType: nil) }, outputs: ["y"], opset: test.opset))
        func feeds(_ type: DType) throws -> [String: Tensor] {
            Dictionary(uniqueKeysWithValues: try inputs.enumerated().map {
                ("x\($0.offset)", try Tensor(shape: [x.count], scalars: $0.element).converted(to: type))
            })
        }
        let got = try #require(try executor.run(try feeds(type))["y"])
        let exact = try #require(try executor.run(try feeds(.float64))["y"])
        return (got, exact)
    }

    @Test(arguments: ops)
    func everyAllowedTypeAgreesWithFloat64(_ test: TypedOp) throws {
        for type in test.types {
            let (got, exact) = try run(test, type)
            let boolResult = exact.dtype == .bool
            #expect(got.dtype == (boolResult ? .bool : type), "\(test.op) \(type) gave \(got.dtype)")
            guard !boolResult else {
                #expect(try got.scalars(as: Bool.self) == exact.scalars(as: Bool.self), "\(test.op) \(type)")
                continue
            }
            // Integer results are exact; float ones within 4 units in the last place of their
            // type, relative to the largest value (LogSoftmax subtracts terms that size).
            let (ours, reference) = (try got.doubles(), try exact.doubles())
            let unit = type == .float16 ? 0x1p-10 : type == .float32 ? 0x1p-23 : 0
            let largest = reference.map(abs).max() ?? 0
            #expect(
                zip(ours, reference).allSatisfy { abs($0 - $1) <= 4 * unit * max(abs($1), largest) || $0 == $1 },
                "\(test.op) \(type): \(ours) vs \(reference)")
        }
    }

    @Test(arguments: ops)
    func disallowedTypesAreRejectedByName(_ test: TypedOp) throws {
        for type in DType.allCases where !test.types.contains(type) {
            #expect(throws: (any Error).self, "\(test.op) \(type)") { _ = try self.run(test, type) }
            let message = errorText { _ = try self.run(test, type) }
            #expect(message.contains(test.op) && message.contains(type.rawValue), "\(test.op) \(type): \(message)")
        }
    }

    @Test func logicOpsTakeOnlyBools() throws {
        for op in ["And", "Or", "Xor", "Not"] {
            let arity = op == "Not" ? 1 : 2
            let executor = try Executor(model: makeModel(
                [Node(opType: op, inputs: (0..<arity).map { "x\($0)" }, outputs: ["y"])],
                inputs: (0..<arity).map { ValueInfo(name: "x\($0)", elementType: nil) }, outputs: ["y"]))
            let bits = try Tensor(shape: [2], scalars: [true, false])
            let floats = try Tensor(shape: [2], scalars: [Float(1), 0])
            _ = try executor.run(Dictionary(uniqueKeysWithValues: (0..<arity).map { ("x\($0)", bits) }))
            let message = errorText { _ = try executor.run(Dictionary(uniqueKeysWithValues: (0..<arity).map { ("x\($0)", floats) })) }
            #expect(message.contains(op) && message.contains("float32"), "\(message)")
        }
    }
}

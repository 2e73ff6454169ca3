import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// A model from nodes written in Swift: the tiny graph builder the executor tests use.
func makeModel(
    _ nodes: [Node], inputs: [ValueInfo], outputs: [String], initializers: [String: Tensor] = [:], opset: Int = 17
) -> Model {
    Model(
        opsets: ["": opset],
        graph: Graph(
            nodes: nodes, initializers: initializers, inputs: inputs, outputs: outputs.map { ValueInfo(name: $0) }))
}

@Suite struct ExecutorValidationTests {
    let x = ValueInfo(name: "x", shape: [.symbolic("batch"), .fixed(3)])

    @Test func listsEveryUnsupportedOperatorOnceWithCountAndFirstNodes() {
        let model = makeModel(
            [
                Node(name: "/a/Foo", opType: "Foo", inputs: ["x"], outputs: ["a"]),
                Node(opType: "Bar", inputs: ["a"], outputs: ["e"]),
                Node(name: "/b/Foo", opType: "Foo", inputs: ["e"], outputs: ["b"]),
                Node(name: "act", opType: "Relu", inputs: ["b"], outputs: ["r"]),
                Node(name: "custom", opType: "FusedGelu", domain: "com.microsoft", inputs: ["r"], outputs: ["c"]),
                Node(name: "/c/Foo", opType: "Foo", inputs: ["c"], outputs: ["d"]),
                Node(name: "/d/Foo", opType: "Foo", inputs: ["d"], outputs: ["f"]),
            ], inputs: [x], outputs: ["f"])
        // Most used first, ties by name; three node names each, then an ellipsis.
        #expect(
            errorText { try Executor(model: model) }
                == "unsupported ops: Foo ×4 (/a/Foo, /b/Foo, /c/Foo, …), Bar ×1 (producing 'e'), com.microsoft.FusedGelu ×1 (custom)")
    }

    @Test func rejectsUndefinedInputsDuplicatesAndCycles() {
        let missing = makeModel([Node(name: "fc", opType: "MatMul", inputs: ["x", "fc.weight"], outputs: ["y"])], inputs: [x], outputs: ["y"])
        #expect(errorText { try Executor(model: missing) }.contains("node 'fc' (MatMul) reads 'fc.weight'"))

        let duplicate = makeModel(
            [Node(opType: "Relu", inputs: ["x"], outputs: ["y"]), Node(name: "again", opType: "Neg", inputs: ["x"], outputs: ["y"])],
            inputs: [x], outputs: ["y"])
        #expect(errorText { try Executor(model: duplicate) }.contains("'y' is defined more than once"))

        let cycle = makeModel(
            [
                Node(name: "a", opType: "Add", inputs: ["x", "c"], outputs: ["b"]),
                Node(name: "b", opType: "Relu", inputs: ["b"], outputs: ["c"]),
            ], inputs: [x], outputs: ["c"])
        #expect(errorText { try Executor(model: cycle) }.contains("cycle through: node 'a' (Add), node 'b' (Relu)"))

        let noOutput = makeModel([Node(opType: "Relu", inputs: ["x"], outputs: ["y"])], inputs: [x], outputs: ["z"])
        #expect(errorText { try Executor(model: noOutput) }.contains("graph output 'z' is never computed"))
    }

    @Test func rejectsBadAttributesAtLoadNamingTheNode() {
        let model = makeModel(
            [Node(name: "/conv", opType: "Conv", inputs: ["x", "x"], outputs: ["y"], attributes: ["auto_pad": .string("SAME")])],
            inputs: [x], outputs: ["y"])
        let text = errorText { try Executor(model: model) }
        #expect(text.contains("node '/conv' (Conv), attribute 'auto_pad'"))
    }
}

@Suite struct ExecutorRunTests {
    /// y = relu(x @ w + b), with the pre-activation exposed as "h".
    func linearModel() throws -> Executor {
        let w = try Tensor(shape: [3, 2], scalars: [Float(1), -1, 2, 0, 0, 1])
        let b = try Tensor(shape: [2], scalars: [Float(0.5), -0.5])
        return try Executor(
            model: makeModel(
                [
                    Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["m"]),
                    Node(name: "bias", opType: "Add", inputs: ["m", "b"], outputs: ["h"]),
                    Node(name: "act", opType: "Relu", inputs: ["h"], outputs: ["y"]),
                ],
                inputs: [ValueInfo(name: "x", shape: [.symbolic("batch"), .fixed(3)])], outputs: ["y"],
                initializers: ["w": w, "b": b]))
    }

    @Test func runsAnyBatchAndTapsIntermediates() throws {
        let executor = try linearModel()
        for batch in [1, 3] {
            let x = try Tensor(shape: [batch, 3], scalars: (0..<batch * 3).map { Float($0) - 2 })
            let result = try executor.run(["x": x], fetch: ["y", "h"])
            let h = try #require(result["h"]).scalars(as: Float.self)
            let y = try #require(result["y"]).scalars(as: Float.self)
            #expect(h.count == batch * 2)
            #expect(y == h.map { max($0, 0) })
            // Row 0 of x is [-2, -1, 0]: h = [-2 - 2 + 0.5, 2 + 0 - 0.5].
            #expect(Array(h.prefix(2)) == [-3.5, 1.5])
        }
    }

    @Test func wrongInputsAreExplained() throws {
        let executor = try linearModel()
        let good = try Tensor(zeros: .float32, shape: [2, 3])
        #expect(errorText { try executor.run(["x": try Tensor(zeros: .float32, shape: [2, 3, 1])]) }.contains("expects rank 2 [batch, 3], got shape [2, 3, 1]"))
        #expect(errorText { try executor.run(["x": try Tensor(zeros: .float32, shape: [2, 4])]) }.contains("axis 1 must be 3"))
        #expect(errorText { try executor.run(["x": try Tensor(zeros: .float64, shape: [2, 3])]) }.contains("expects float32 elements, got float64"))
        #expect(errorText { try executor.run([:]) }.contains("no tensor was given for the model input 'x'"))
        #expect(errorText { try executor.run(["x": good, "extra": good]) }.contains("'extra' is not an input"))
    }

    @Test func unknownTapNamesSuggestNeighbours() throws {
        let executor = try linearModel()
        let text = errorText { try executor.run(["x": try Tensor(zeros: .float32, shape: [1, 3])], fetch: ["hh"]) }
        #expect(text.contains("no tensor named 'hh'"))
        #expect(text.contains("did you mean 'h'"))
        #expect(!text.contains("shortcut-detect"))  // the library does not know the command line
    }

    @Test func runtimeFailuresNameTheNode() throws {
        let executor = try Executor(
            model: makeModel(
                [Node(name: "/reshape", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])],
                inputs: [ValueInfo(name: "x", shape: [.symbolic("n")])], outputs: ["y"],
                initializers: ["s": try Tensor(shape: [1], scalars: [Int64(5)])]))
        let text = errorText { try executor.run(["x": try Tensor(zeros: .float32, shape: [4])]) }
        #expect(text.contains("node '/reshape' (Reshape) failed: cannot reshape [4] (4 elements) to [5]"))
    }

    @Test func onlyTheNodesATapNeedsRun() throws {
        // "bad" would fail if run; fetching "h" must not touch it.
        let executor = try Executor(
            model: makeModel(
                [
                    Node(name: "act", opType: "Relu", inputs: ["x"], outputs: ["h"]),
                    Node(name: "bad", opType: "Reshape", inputs: ["h", "s"], outputs: ["y"]),
                ],
                inputs: [ValueInfo(name: "x", shape: [.fixed(4)])], outputs: ["y"],
                initializers: ["s": try Tensor(shape: [1], scalars: [Int64(5)])]))
        let result = try executor.run(["x": try Tensor(zeros: .float32, shape: [4])], fetch: ["h"])
        #expect(result["h"]?.shape == [4])
    }
}

/// Remembers, weakly, the storage an ``Emit`` node produced, and whether it was alive when checked.
final class StorageProbe: @unchecked Sendable {
    weak var early: TensorStorage?
    var aliveWhenChecked: Bool?
}

/// Copies its input and tells the probe about the copy.
struct Emit: Operator {
    let probe: StorageProbe
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let copy = try Tensor(shape: x.shape, scalars: x.scalars(as: Float.self))
        probe.early = copy.storage
        return [copy]
    }
}

/// Identity that records whether Emit's output still exists: in its forward (or, when
/// differentiated, in its backward).
struct Check: DifferentiableOperator {
    let probe: StorageProbe
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        probe.aliveWhenChecked = probe.early != nil
        return [try inputs.required(0)]
    }
    func savedForBackward(wanted: [Bool]) -> SavedValues { .nothing }
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        probe.aliveWhenChecked = probe.early != nil
        return [try step.gradient()]
    }
}

/// A registry with Emit and Check registered against `probe`.
func probeRegistry(_ probe: StorageProbe) -> OpRegistry {
    var registry = OpRegistry.standard
    registry.register("Emit") { _ in Emit(probe: probe) }
    registry.register("Check") { _ in Check(probe: probe) }
    return registry
}

/// Intermediates are freed as soon as no later node reads them.
@Suite struct ExecutorMemoryTests {
    @Test func intermediatesAreReleasedAfterTheirLastUse() throws {
        let probe = StorageProbe()
        let registry = probeRegistry(probe)
        let model = makeModel(
            [
                Node(opType: "Emit", inputs: ["x"], outputs: ["a"]),
                Node(opType: "Relu", inputs: ["a"], outputs: ["b"]),
                Node(opType: "Neg", inputs: ["b"], outputs: ["c"]),
                Node(opType: "Check", inputs: ["c"], outputs: ["d"]),
            ], inputs: [ValueInfo(name: "x", shape: [.fixed(2)])], outputs: ["d"])
        let executor = try Executor(model: model, registry: registry)
        let x = try Tensor(shape: [2], scalars: [Float(1), -1])
        _ = try executor.run(["x": x])
        #expect(probe.aliveWhenChecked == false)
        // Tapping "a" keeps it alive to the end.
        _ = try executor.run(["x": x], fetch: ["d", "a"])
        #expect(probe.aliveWhenChecked == true)
    }
}

/// Values a file can declare that would overflow or exhaust memory are errors, never traps.
@Suite struct AbsurdValueTests {
    func run(_ node: Node, _ x: Tensor, initializers: [String: Tensor] = [:]) -> String {
        errorText {
            try Executor(
                model: makeModel([node], inputs: [ValueInfo(name: "x", elementType: x.dtype)], outputs: node.outputs, initializers: initializers)
            ).run(["x": x])
        }
    }

    @Test func hugeAttributesAndShapesAreRejected() throws {
        let x = try Tensor(zeros: .float32, shape: [1, 1, 4, 4])
        let pads = run(Node(opType: "MaxPool", inputs: ["x"], outputs: ["y"], attributes: ["kernel_shape": .ints([2, 2]), "pads": .ints([1 << 40, 0, 0, 0])]), x)
        #expect(pads.contains("attribute 'pads'"))

        let shape = try Tensor(shape: [3], scalars: [Int64(1) << 20, Int64(1) << 20, Int64(1) << 10])
        let huge = run(Node(opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"]), x, initializers: ["s": shape])
        #expect(huge.contains("more than the memory budget allows"))

        let overflow = try Tensor(shape: [3], scalars: [Int64.max, Int64.max, 2])
        #expect(run(Node(opType: "Expand", inputs: ["x", "s"], outputs: ["y"]), x, initializers: ["s": overflow]).contains("failed"))
        #expect(run(Node(opType: "Reshape", inputs: ["x", "s"], outputs: ["y"]), x, initializers: ["s": try Tensor(shape: [2], scalars: [Int64(-1), .max])]).contains("failed"))
        #expect(run(Node(opType: "Split", inputs: ["x", "s"], outputs: ["a", "b"], attributes: ["axis": .int(2)]), x, initializers: ["s": try Tensor(shape: [2], scalars: [Int64.max, 4 - Int64.max])]).contains("split sizes"))
    }

    @Test func extremeSliceStepsTakeOneElement() throws {
        let x = try Tensor(shape: [5], scalars: (0..<5).map(Float.init))
        let model = makeModel(
            [Node(opType: "Slice", inputs: ["x", "starts", "ends", "axes", "steps"], outputs: ["y"])],
            inputs: [ValueInfo(name: "x")], outputs: ["y"],
            initializers: [
                "starts": try Tensor(shape: [1], scalars: [Int64(1)]), "ends": try Tensor(shape: [1], scalars: [Int64.max]),
                "axes": try Tensor(shape: [1], scalars: [Int64(0)]), "steps": try Tensor(shape: [1], scalars: [Int64.max]),
            ])
        #expect(try Executor(model: model).run(["x": x])["y"]?.scalars(as: Float.self) == [1])
    }
}

/// The reverse pass keeps forward values only for the nodes between the target and the output.
@Suite struct ReverseModeMemoryTests {
    @Test func valuesBeforeTheTargetAreFreedBeforeBackward() throws {
        let probe = StorageProbe()
        let registry = probeRegistry(probe)
        let model = makeModel(
            [
                Node(opType: "Emit", inputs: ["x"], outputs: ["a"]),
                Node(opType: "Relu", inputs: ["a"], outputs: ["b"]),
                Node(opType: "Check", inputs: ["b"], outputs: ["c"]),
                Node(opType: "Relu", inputs: ["c"], outputs: ["y"]),
            ], inputs: [ValueInfo(name: "x", shape: [.fixed(3)])], outputs: ["y"])
        let executor = try Executor(model: model, registry: registry)
        let x = try Tensor(shape: [3], scalars: [Float(1), -2, 3])
        let seed = try Tensor(shape: [3], scalars: [Float(1), 1, 1])
        let result = try executor.gradients(["x": x], seed: { _ in seed }, wrt: ["b"])
        #expect(probe.aliveWhenChecked == false)
        #expect(try result.gradients["b"]?.scalars(as: Float.self) == [1, 0, 1])
        #expect(try result.values["b"]?.scalars(as: Float.self) == [1, 0, 3])
    }

    @Test func float16GraphsDifferentiateThroughFloat32Kernels() throws {
        let model = makeModel(
            [Node(opType: "Mul", inputs: ["x", "x"], outputs: ["y"])], inputs: [ValueInfo(name: "x", elementType: .float16)],
            outputs: ["y"])
        let x = try Tensor(shape: [2], scalars: [Float(1.5), -2]).converted(to: .float16)
        let seed = try Tensor(shape: [2], scalars: [Float(1), 1]).converted(to: .float16)
        let result = try Executor(model: model).gradients(["x": x], seed: { _ in seed }, wrt: ["x"])
        let gradient = try #require(result.gradients["x"])
        #expect(gradient.dtype == .float16)
        #expect(try gradient.converted(to: .float32).scalars(as: Float.self) == [3, -4])
    }
}

import Foundation
@testable import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Whether two tensors hold the same type, shape and bytes.
func identical(_ a: Tensor?, _ b: Tensor?) -> Bool {
    guard let a, let b, a.dtype == b.dtype, a.shape == b.shape else { return false }
    return a.withUnsafeBytes { x in b.withUnsafeBytes { y in x.elementsEqual(y) } }
}

/// Reports, as an int64 tensor, which of its inputs the executor marked constant.
struct ConstancyProbe: Operator {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        [try Tensor(shape: [inputs.count], scalars: (0..<inputs.count).map { Int64(inputs.isConstant($0) ? 1 : 0) })]
    }
}

/// Constant folding at load: what folds, what must not, and that nothing a run returns changes.
@Suite struct ConstantFoldingTests {
    /// The fixture with its first input's batch axis fixed at 2, so `Shape` of it folds as well.
    static func fixedBatch(_ model: Model) -> Model {
        var fixed = model
        fixed.graph.inputs[0].shape?[0] = .fixed(2)
        return fixed
    }

    /// Every tensor of every fixture model, folded and not, with a free and a fixed batch: the same bits.
    @Test(arguments: FixtureManifest.committed?.models ?? [])
    func foldingChangesNoTensor(_ entry: FixtureManifest.Entry) throws {
        let declared = try Model(contentsOf: Fixtures.url("models/\(entry.file)"))
        let input = try Tensor(npyAt: Fixtures.url("models/\(entry.input)"))
        for model in [declared, Self.fixedBatch(declared)] {
            let folded = try Executor(model: model)
            let unfolded = try Executor(model: model, foldConstants: false)
            let inputName = try #require(folded.inputs.first?.name)
            let names = folded.tensorNames
            let a = try folded.run([inputName: input], fetch: names)
            let b = try unfolded.run([inputName: input], fetch: names)
            let differing = names.filter { !identical(a[$0], b[$0]) }
            #expect(differing.isEmpty, "\(entry.name): \(differing.prefix(5))")
            // Every Constant node is read at load in both modes.
            let constantOutputs = model.graph.nodes.filter { $0.opType == "Constant" }.flatMap(\.outputs)
            #expect(Set(constantOutputs).isSubset(of: folded.foldedTensors))
            #expect(Set(constantOutputs) == unfolded.foldedTensors)
        }
    }

    /// The reverse pass reaches every tensor that was not folded, with the same gradients.
    @Test(arguments: FixtureManifest.committed?.models ?? [])
    func gradientsReachEveryTensorThatWasNotFolded(_ entry: FixtureManifest.Entry) throws {
        let model = Self.fixedBatch(try Model(contentsOf: Fixtures.url("models/\(entry.file)")))
        let input = try Tensor(npyAt: Fixtures.url("models/\(entry.input)"))
        let folded = try Executor(model: model)
        let unfolded = try Executor(model: model, foldConstants: false)
        let inputName = try #require(folded.inputs.first?.name)
        let computed = model.graph.nodes.flatMap(\.outputs).filter { !$0.isEmpty && !folded.foldedTensors.contains($0) }
        let wrt = [inputName] + computed
        let a = try folded.gradients([inputName: input], seed: logitSeed(nil), wrt: wrt)
        let b = try unfolded.gradients([inputName: input], seed: logitSeed(nil), wrt: wrt)
        let differing = wrt.filter { !identical(a.gradients[$0], b.gradients[$0]) }
        #expect(differing.isEmpty, "\(entry.name): \(differing.prefix(5))")
        #expect(try a.gradients[inputName].map { try $0.doubles().contains { $0 != 0 } } == true)
    }

    /// A fixed batch lets the exporters' `Shape → Gather → … → Reshape` chains fold: ViT's
    /// TorchScript export computes its head split from the input's shape.
    @Test func shapeChainsOfFixedInputsFold() throws {
        let model = Self.fixedBatch(try Model(contentsOf: Fixtures.url("models/vit_ts17.onnx")))
        let folded = try Executor(model: model).foldedTensors
        let foldedOps = Set(model.graph.nodes.filter { $0.outputs.contains(where: folded.contains) }.map(\.opType))
        #expect(foldedOps.isSuperset(of: ["Constant", "Shape", "Gather", "Unsqueeze", "Concat", "Reshape"]), "\(foldedOps)")
        // The dynamic-batch export keeps the batch's shape chain for run time.
        let dynamic = try Executor(model: try Model(contentsOf: Fixtures.url("models/vit_ts17.onnx"))).foldedTensors
        let shapeNodes = model.graph.nodes.filter { $0.opType == "Shape" }.flatMap(\.outputs)
        #expect(!shapeNodes.contains(where: dynamic.contains))
    }

    /// `x [2, 3] → Shape → Gather(1) → Unsqueeze → Concat(-1, ·) → Reshape(x)`, plus a weight
    /// transpose and a cast: everything but the final Reshape folds.
    func shapeChain(batch: ONNXModel.Dimension) throws -> Model {
        makeModel(
            [
                Node(name: "shape", opType: "Shape", inputs: ["x"], outputs: ["s"]),
                Node(name: "dim", opType: "Gather", inputs: ["s", "one"], outputs: ["d"], attributes: ["axis": .int(0)]),
                Node(name: "unsq", opType: "Unsqueeze", inputs: ["d", "zero"], outputs: ["u"]),
                Node(name: "cat", opType: "Concat", inputs: ["minus", "u"], outputs: ["target"], attributes: ["axis": .int(0)]),
                Node(name: "flat", opType: "Reshape", inputs: ["x", "target"], outputs: ["r"]),
                Node(name: "wt", opType: "Transpose", inputs: ["w"], outputs: ["wT"], attributes: ["perm": .ints([1, 0])]),
                Node(name: "cast", opType: "Cast", inputs: ["wT"], outputs: ["w32"], attributes: ["to": .int(1)]),
                Node(name: "mm", opType: "MatMul", inputs: ["r", "w32"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", shape: [batch, .fixed(3)])], outputs: ["y"],
            initializers: [
                "one": Tensor(scalar: Int64(1)), "zero": try int64s([0]), "minus": try int64s([-1]),
                "w": try Tensor(shape: [2, 3], scalars: [1.0, 2, 3, 4, 5, 6]),
            ])
    }

    @Test func foldedTensorsCanBeFetchedAndRunsDoNotChange() throws {
        let x = try Tensor(shape: [2, 3], scalars: [Float(1), 2, 3, 4, 5, 6])
        let fixed = try Executor(model: try shapeChain(batch: .fixed(2)))
        #expect(fixed.foldedTensors == ["s", "d", "u", "target", "wT", "w32"])
        let result = try fixed.run(["x": x], fetch: ["y", "target", "w32"])
        #expect(try result["target"]?.integers() == [-1, 3])
        #expect(try result["w32"]?.scalars(as: Float.self) == [1, 4, 2, 5, 3, 6])
        #expect(try result["y"]?.scalars(as: Float.self) == [14, 32, 32, 77])
        let unfolded = try Executor(model: try shapeChain(batch: .fixed(2)), foldConstants: false)
        #expect(unfolded.foldedTensors.isEmpty)
        #expect(identical(try unfolded.run(["x": x])["y"], result["y"]))
        // A free batch leaves the shape chain to run time; the weight still folds.
        let free = try Executor(model: try shapeChain(batch: .symbolic("N")))
        #expect(free.foldedTensors == ["wT", "w32"])
        #expect(identical(try free.run(["x": x])["y"], result["y"]))
        // A folded shape still holds the input to its declared size.
        #expect(errorText { try fixed.run(["x": try Tensor(zeros: .float32, shape: [3, 3])]) }.contains("axis 0 must be 2"))
    }

    /// Ops see weights held in `Constant` nodes and folded weights as constants (what lets Conv
    /// and MatMul pack them once), with folding or without.
    @Test func constantNodesAndFoldedValuesAreConstantInputs() throws {
        var registry = OpRegistry.standard
        registry.register("Probe") { _ in ConstancyProbe() }
        let w = try Tensor(shape: [2], scalars: [Float(1), 2])
        let model = makeModel(
            [
                Node(opType: "Constant", inputs: [], outputs: ["k"], attributes: ["value": .tensor(w)]),
                Node(opType: "Neg", inputs: ["k"], outputs: ["negK"]),
                Node(opType: "Probe", inputs: ["x", "w", "k", "negK"], outputs: ["flags"]),
            ],
            inputs: [ValueInfo(name: "x", shape: [.fixed(2)])], outputs: ["flags"], initializers: ["w": w])
        let x = try Tensor(zeros: .float32, shape: [2])
        let folded = try Executor(model: model, registry: registry).run(["x": x])["flags"]
        #expect(try folded?.integers() == [0, 1, 1, 1])
        let unfolded = try Executor(model: model, registry: registry, foldConstants: false).run(["x": x])["flags"]
        #expect(try unfolded?.integers() == [0, 1, 1, 0])
    }

    /// A Conv whose weights and bias come from `Constant` nodes (as paddle2onnx writes them) gives
    /// the initializer version's result bit for bit (both take the packed-weight path).
    @Test func convolutionWithConstantNodeWeightsMatchesInitializers() throws {
        let w = try randomTensor([8, 3, 3, 3], seed: 11, dtype: .float32)
        let b = try randomTensor([8], seed: 12, dtype: .float32)
        let x = try randomTensor([2, 3, 9, 9], seed: 13, dtype: .float32)
        let conv = Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"], attributes: ["strides": .ints([2, 2])])
        let input = ValueInfo(name: "x", shape: [.unknown, .fixed(3), .unknown, .unknown])
        let withInitializers = makeModel([conv], inputs: [input], outputs: ["y"], initializers: ["w": w, "b": b])
        let withConstants = makeModel(
            [
                Node(opType: "Constant", inputs: [], outputs: ["w"], attributes: ["value": .tensor(w)]),
                Node(opType: "Constant", inputs: [], outputs: ["b"], attributes: ["value": .tensor(b)]),
                conv,
            ], inputs: [input], outputs: ["y"])
        let expected = try Executor(model: withInitializers).run(["x": x])["y"]
        #expect(identical(try Executor(model: withConstants).run(["x": x])["y"], expected))
        #expect(withConstants.graph.parameterCount == withInitializers.graph.parameterCount)
    }

    /// Outputs that would be large are left to run time: sized before running where the size
    /// comes from input values (ConstantOfShape, Expand, Tile, Range), checked after otherwise.
    @Test func largeOutputsAreLeftToRunTime() throws {
        let limit = Executor.constantFoldingLimit
        let side = Int(Double(limit / 4).squareRoot()) + 1  // side² float32 values pass the limit
        let small = try int64s([4, 4])
        let large = try int64s([side, side])
        let model = makeModel(
            [
                Node(opType: "ConstantOfShape", inputs: ["small"], outputs: ["zerosSmall"]),
                Node(opType: "ConstantOfShape", inputs: ["large"], outputs: ["zerosLarge"]),
                Node(opType: "Expand", inputs: ["one", "large"], outputs: ["expanded"]),
                Node(opType: "Add", inputs: ["column", "row"], outputs: ["outer"]),
                Node(opType: "Add", inputs: ["x", "zerosSmall"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", shape: [.fixed(4), .fixed(4)])], outputs: ["y", "zerosLarge", "expanded", "outer"],
            initializers: [
                "small": small, "large": large, "one": Tensor(scalar: Float(1)),
                "column": try Tensor(zeros: .float32, shape: [side, 1]), "row": try Tensor(zeros: .float32, shape: [1, side]),
            ])
        let executor = try Executor(model: model)
        #expect(executor.foldedTensors == ["zerosSmall"])
        let outer = try executor.run(["x": try Tensor(zeros: .float32, shape: [4, 4])], fetch: ["outer"])["outer"]
        #expect(outer?.shape == [side, side])
    }

    /// Ops sized by their input values (including those other registries add) are sized before
    /// they run; those that cannot be sized beforehand wait for run time.
    @Test func valueSizedOpsAreSizedBeforeRunning() throws {
        let side = Int(Double(Executor.constantFoldingLimit / 4).squareRoot()) + 1
        let x = try Tensor(zeros: .float32, shape: [1, side])
        func fits(_ op: String, _ inputs: [Tensor?], attributes: [String: Attribute] = [:]) -> Bool {
            ConstantFolder.fitsBeforeRunning(Node(opType: op, inputs: [], outputs: ["y"], attributes: attributes), inputs)
        }
        #expect(fits("Tile", [x, try int64s([2, 1])]))
        #expect(!fits("Tile", [x, try int64s([side, 1])]))
        #expect(!fits("Tile", [x, try int64s([-1, 1])]))
        #expect(!fits("Tile", [x, try int64s([Int.max, 2])]))
        func scalar(_ value: Float) -> Tensor { Tensor(scalar: value) }
        #expect(fits("Range", [scalar(0), scalar(10), scalar(0.5)]))
        #expect(fits("Range", [scalar(10), scalar(0), scalar(1)]))  // empty
        #expect(!fits("Range", [scalar(0), scalar(1e9), scalar(1)]))
        #expect(!fits("Range", [scalar(0), scalar(1), scalar(0)]))
        #expect(!fits("Range", [scalar(-.infinity), scalar(0), scalar(1)]))
        // The fill value's type sets ConstantOfShape's size: 3M float32 values fit, 3M float64 ones do not.
        let shape = try int64s([3 << 20])
        #expect(fits("ConstantOfShape", [shape]))
        #expect(!fits("ConstantOfShape", [shape], attributes: ["value": .tensor(Tensor(scalar: Double(1)))]))
        #expect(!fits("Expand", [x, try int64s([side, 1])]))
        #expect(!fits("Resize", [x]))
        #expect(fits("Transpose", [x]))
    }

    /// A node with constant inputs that cannot work fails at load, naming the node.
    @Test func foldingErrorsNameTheNode() throws {
        let model = makeModel(
            [
                Node(name: "/head/Reshape", opType: "Reshape", inputs: ["w", "shape"], outputs: ["w2"]),
                Node(opType: "Add", inputs: ["x", "w2"], outputs: ["y"]),
            ],
            inputs: [ValueInfo(name: "x", shape: [.fixed(6)])], outputs: ["y"],
            initializers: ["w": try Tensor(zeros: .float32, shape: [6]), "shape": try int64s([4])])
        #expect(errorText { try Executor(model: model) }.contains("node '/head/Reshape' (Reshape) failed: cannot reshape [6]"))
        let unfolded = try Executor(model: model, foldConstants: false)
        #expect(errorText { try unfolded.run(["x": try Tensor(zeros: .float32, shape: [6])]) }.contains("node '/head/Reshape' (Reshape) failed"))
    }

    /// `Size` (where a registry has it) and `Shape` of a fixed-size input read its declared
    /// shape at load; of a free-size input they wait for the feed.
    @Test func shapeReadersOfFixedInputsFold() throws {
        struct ElementCount: Operator {
            func forward(_ inputs: OpInputs) throws -> [Tensor?] { [Tensor(scalar: Int64(try inputs.required(0).count))] }
        }
        var registry = OpRegistry.standard
        registry.register("Size") { _ in ElementCount() }
        func model(_ batch: ONNXModel.Dimension) -> Model {
            makeModel(
                [
                    Node(opType: "Size", inputs: ["x"], outputs: ["n"]),
                    Node(opType: "Shape", inputs: ["x"], outputs: ["s"], attributes: ["start": .int(1)]),
                ],
                inputs: [ValueInfo(name: "x", shape: [batch, .fixed(5)])], outputs: ["n", "s"])
        }
        let fixed = try Executor(model: model(.fixed(3)), registry: registry)
        #expect(fixed.foldedTensors == ["n", "s"])
        let result = try fixed.run(["x": try Tensor(zeros: .float32, shape: [3, 5])])
        #expect(try result["n"]?.integers() == [15] && result["s"]?.integers() == [5])
        #expect(try Executor(model: model(.symbolic("N")), registry: registry).foldedTensors.isEmpty)
    }

    /// Ops that draw random numbers run on every run, however constant their inputs.
    @Test func randomOpsAreNeverFolded() throws {
        var registry = OpRegistry.standard
        registry.register("RandomUniformLike") { _ in ConstancyProbe() }
        let model = makeModel(
            [Node(opType: "RandomUniformLike", inputs: ["w"], outputs: ["r"])], inputs: [], outputs: ["r"],
            initializers: ["w": try Tensor(zeros: .float32, shape: [1])])
        #expect(try Executor(model: model, registry: registry).foldedTensors.isEmpty)
    }
}

import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Finite-difference checks of the reductions' backward rules (float64 unless stated; tolerances
/// as GradientCheck states). Inputs are random and away from zero, so no two elements tie and
/// no |x| or product sits at its kink; the kinks are checked against PyTorch in OpCaseTests.
@Suite struct ReductionGradientTests {
    let x: Tensor

    init() throws { x = try randomTensor([2, 3, 4], seed: 60) }

    static let reductions = ["ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSumExp", "ReduceProd", "ReduceMax", "ReduceMin"]

    @Test(arguments: reductions)
    func axesAsAnInputWithAndWithoutKeepdims(_ op: String) throws {
        let kept = GradientCheck(op: op, inputs: [x], constants: [(1, try int64s([0, -1]))], opset: 18)
        #expect(try kept.run() == [])
        let dropped = GradientCheck(op: op, attributes: ["keepdims": .int(0)], inputs: [x], constants: [(1, try int64s([1]))], opset: 18)
        #expect(try dropped.run() == [])
    }

    @Test(arguments: reductions)
    func axesAsAnAttributeAndAllAxes(_ op: String) throws {
        let attribute = GradientCheck(op: op, attributes: ["axes": .ints([2])], inputs: [x], opset: 13)
        #expect(try attribute.run() == [])
        let all = GradientCheck(op: op, attributes: ["keepdims": .int(0)], inputs: [x], opset: 13)
        #expect(try all.run() == [])
    }

    /// noop_with_empty_axes: only the element-wise part (x², |x|, ...) remains, and its derivative.
    @Test(arguments: reductions + ["ReduceSum", "ReduceMean"])
    func noopWithEmptyAxes(_ op: String) throws {
        let check = GradientCheck(
            op: op, attributes: ["noop_with_empty_axes": .int(1)], inputs: [x], constants: [(1, try int64s([]))], opset: 18)
        #expect(try check.run() == [])
    }

    /// The float32 kernels (specialized by name) take the same rules: h = 1e-2 needs the
    /// elements of a row further apart than that, which random values in ±[0.1, 1] are not, so
    /// the max/min inputs are spread out.
    @Test(arguments: ["ReduceL2", "ReduceMax", "ReduceMin", "ReduceSumSquare", "ReduceLogSumExp"])
    func float32Kernels(_ op: String) throws {
        let spread = try Tensor(shape: [2, 3, 4], scalars: (0..<24).map { Float(($0 * 7) % 24) / 8 - 1.4 })
        let check = GradientCheck(op: op, inputs: [spread], constants: [(1, try int64s([1, 2]))], opset: 18)
        #expect(try check.run() == [])
        let inner = GradientCheck(op: op, inputs: [spread], constants: [(1, try int64s([-1]))], opset: 18)
        #expect(try inner.run() == [])
    }

    @Test(arguments: [true, false])
    func topKValues(_ largest: Bool) throws {
        let check = GradientCheck(
            op: "TopK", attributes: ["axis": .int(1), "largest": .int(largest ? 1 : 0)], inputs: [x],
            constants: [(1, try int64s([2]))], outputs: 2, seeded: 0, opset: 11)
        #expect(try check.run() == [])
        let attribute = GradientCheck(op: "TopK", attributes: ["k": .int(3)], inputs: [x], outputs: 2, seeded: 0, opset: 1)
        #expect(try attribute.run() == [])
    }

    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func cumSum(_ flags: (exclusive: Bool, reverse: Bool)) throws {
        for axis in [0, 1, -1] {
            let check = GradientCheck(
                op: "CumSum", attributes: ["exclusive": .int(flags.exclusive ? 1 : 0), "reverse": .int(flags.reverse ? 1 : 0)],
                inputs: [x], constants: [(1, Tensor(scalar: Int64(axis)))], opset: 14)
            #expect(try check.run() == [])
        }
    }

    /// ArgMax's output is an index: no gradient flows back through it, so a graph that only
    /// uses it to pick gives zero gradient to the arg-maxed input rather than an error.
    @Test func argMaxPassesNoGradient() throws {
        let node = Node(name: "argmax", opType: "ArgMax", inputs: ["x"], outputs: ["i"], attributes: ["axis": .int(1), "keepdims": .int(0)])
        let gather = Node(name: "pick", opType: "GatherElements", inputs: ["x", "j"], outputs: ["y"], attributes: ["axis": .int(1)])
        let unsqueeze = Node(name: "unsqueeze", opType: "Unsqueeze", inputs: ["i", "one"], outputs: ["j"])
        let model = Model(
            opsets: ["": 13],
            graph: Graph(
                nodes: [node, unsqueeze, gather], initializers: ["one": try int64s([1])],
                inputs: [ValueInfo(name: "x", elementType: .float64)], outputs: [ValueInfo(name: "y", elementType: nil)]))
        let executor = try Executor(model: model)
        let x = try randomTensor([2, 5], seed: 61)
        let result = try executor.gradients(["x": x], seed: { try Tensor(shape: $0.shape, scalars: [1.0, 1.0]) }, wrt: ["x"])
        // The gradient reaches x only through GatherElements: 1 at each row's maximum.
        let values = try x.doubles()
        let expected = (0..<2).flatMap { row -> [Double] in
            let slice = Array(values[row * 5..<(row + 1) * 5])
            let best = slice.indices.max { slice[$0] < slice[$1] } ?? 0
            return (0..<5).map { $0 == best ? 1 : 0 }
        }
        #expect(try result.gradients["x"]?.doubles() == expected)
    }
}

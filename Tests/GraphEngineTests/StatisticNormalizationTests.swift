import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// InstanceNormalization, GroupNormalization, MeanVarianceNormalization, LRN, LpNormalization and
/// training-mode BatchNormalization: finite-difference checks of each backward rule for the input,
/// scale and bias (float64, tolerance as stated in GradientCheck, unless noted), and errors.
@Suite struct StatisticNormalizationTests {
    @Test func instanceAndGroupNormalization() throws {
        let x = try randomTensor([2, 4, 3, 2], seed: 120)
        let instance = GradientCheck(
            op: "InstanceNormalization", attributes: ["epsilon": .float(1e-3)],
            inputs: [x, try randomTensor([4], seed: 121), try randomTensor([4], seed: 122)])
        #expect(try instance.run() == [])
        // Opset 21: a scale and bias per channel; opset 18: per group.
        let perChannel = GradientCheck(
            op: "GroupNormalization", attributes: ["num_groups": .int(2)],
            inputs: [x, try randomTensor([4], seed: 123), try randomTensor([4], seed: 124)], opset: 21)
        #expect(try perChannel.run() == [])
        let perGroup = GradientCheck(
            op: "GroupNormalization", attributes: ["num_groups": .int(2), "epsilon": .float(1e-2)],
            inputs: [x, try randomTensor([2], seed: 125), try randomTensor([2], seed: 126)], opset: 18)
        #expect(try perGroup.run() == [])
        let oneGroup = GradientCheck(
            op: "GroupNormalization", attributes: ["num_groups": .int(1)],
            inputs: [try randomTensor([2, 3, 5], seed: 127), try randomTensor([3], seed: 128), try randomTensor([3], seed: 129)], opset: 21)
        #expect(try oneGroup.run() == [])
    }

    /// The float32 kernel (the one real models run): float32 step and tolerance.
    @Test func float32GroupNormalization() throws {
        let check = GradientCheck(
            op: "GroupNormalization", attributes: ["num_groups": .int(2)],
            inputs: [
                try randomTensor([2, 4, 3, 3], seed: 130, dtype: .float32), try randomTensor([4], seed: 131, dtype: .float32),
                try randomTensor([4], seed: 132, dtype: .float32),
            ], opset: 21)
        #expect(try check.run() == [])
    }

    @Test(arguments: [[0, 2, 3], [2, 3], [1, 2, 3], [0, 1], [1], [3]])
    func meanVarianceNormalization(_ axes: [Int]) throws {
        let check = GradientCheck(
            op: "MeanVarianceNormalization", attributes: ["axes": .ints(axes)], inputs: [try randomTensor([2, 3, 2, 3], seed: 133)],
            opset: 13)
        #expect(try check.run() == [])
    }

    @Test(arguments: [1, 2, 3, 4, 5])
    func localResponseNormalization(_ size: Int) throws {
        let check = GradientCheck(
            op: "LRN", attributes: ["size": .int(size), "alpha": .float(0.5), "beta": .float(0.75), "bias": .float(1.5)],
            inputs: [try randomTensor([2, 5, 2, 2], seed: 134)])
        #expect(try check.run() == [])
    }

    @Test(arguments: [(1, 0), (1, -1), (2, 1), (2, -1)])
    func lpNormalization(_ setting: (Int, Int)) throws {
        // Signs mixed, norms away from zero.
        let x = try randomTensor([2, 3, 4], seed: 135).multiplied(by: try Tensor(shape: [4], scalars: [1.0, -1, 1, -1]))
        let check = GradientCheck(op: "LpNormalization", attributes: ["p": .int(setting.0), "axis": .int(setting.1)], inputs: [x])
        #expect(try check.run() == [])
    }

    @Test func batchNormalizationInTrainingMode() throws {
        let x = try randomTensor([3, 2, 2, 2], seed: 136)
        let inputs = [x, try randomTensor([2], seed: 137), try randomTensor([2], seed: 138)]
        let running = [(3, try randomTensor([2], seed: 139)), (4, try Tensor(shape: [2], scalars: [0.5, 1.5]))]
        let attributes: [String: Attribute] = ["training_mode": .int(1), "momentum": .float(0.8), "epsilon": .float(1e-3)]
        let output = GradientCheck(op: "BatchNormalization", attributes: attributes, inputs: inputs, constants: running, outputs: 3, opset: 15)
        #expect(try output.run() == [])
        // Gradients arriving at the running statistics flow back through the batch statistics too.
        var mean = output
        mean.seeded = 1
        #expect(try mean.run() == [])
        var variance = output
        variance.seeded = 2
        #expect(try variance.run() == [])
    }

    @Test func badInputsGiveErrorsNamingTheNode() throws {
        func run(_ op: String, _ x: Tensor, _ parameters: [Tensor], _ attributes: [String: Attribute], opset: Int = 21) throws -> Tensor {
            let names = parameters.indices.map { "p\($0)" }
            let model = Model(
                opsets: ["": opset],
                graph: Graph(nodes: [Node(name: "norm", opType: op, inputs: ["x"] + names, outputs: ["y"], attributes: attributes)],
                             initializers: Dictionary(uniqueKeysWithValues: zip(names, parameters)),
                             inputs: [ValueInfo(name: "x", elementType: x.dtype)], outputs: [ValueInfo(name: "y")]))
            return try #require(try Executor(model: model).run(["x": x])["y"])
        }
        let x = try randomTensor([1, 6, 2, 2], seed: 140)
        let six = try randomTensor([6], seed: 141)
        #expect(errorText { try run("GroupNormalization", x, [six, six], ["num_groups": .int(4)]) }.contains("6 channels do not split into 4 groups"))
        #expect(errorText { try run("GroupNormalization", x, [six, six], ["num_groups": .int(3)], opset: 18) }.contains("needs 3"))
        #expect(errorText { try run("GroupNormalization", x, [six, six], [:]) }.contains("num_groups"))
        #expect(errorText { try run("InstanceNormalization", x, [six], [:]) }.contains("bias input"))
        #expect(errorText { try run("LpNormalization", x, [], ["p": .int(3)]) }.contains("must be 1 or 2"))
        #expect(errorText { try run("LRN", x, [], ["size": .int(0)]) }.contains("at least 1"))
        #expect(errorText { try run("MeanVarianceNormalization", x, [], ["axes": .ints([4])], opset: 13) }.contains("node 'norm'"))
        #expect(errorText { try run("InstanceNormalization", try randomTensor([3], seed: 142), [six, six], [:]) }.contains("rank 2 or more"))
    }
}

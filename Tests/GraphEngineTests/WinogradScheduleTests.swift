@testable import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Winograd's two schedules (each thread taking whole runs of tiles from input to output, or each
/// stage split over the threads) give the same bits: every output is the same transforms and the
/// same chain of multiply-adds, whichever tiles share a run. Runs cut through tile rows and
/// samples, from one run of all 360 tiles to one tile each.
@Suite struct WinogradScheduleTests {
    @Test(arguments: [[Activation.relu], []])
    func runsAndStagesGiveTheSameBits(_ activations: [Activation]) throws {
        let node = Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["y"], attributes: ["pads": .ints([1, 0, 2, 1])])
        var conv = try Conv(OpContext(node: node, opset: 17))
        conv.activation = activations.first
        // [3, 8, 23, 21] gives 24 × 20 outputs: 12 × 10 tiles per sample, 360 in all.
        var generator = SeededGenerator(seed: 40)
        func values(_ shape: [Int]) throws -> Tensor {
            try Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1..<1, using: &generator) })
        }
        let (x, w, b, r) = (try values([3, 8, 23, 21]), try values([16, 8, 3, 3]), try values([16]), try values([3, 16, 24, 20]))
        let plan = try conv.plan(input: x.shape, weights: w.shape)
        let winograd = try #require(WinogradConvolution(plan))
        let filters = try winograd.filters(w)
        func output(runs: Int?) throws -> [Float] {
            let y = try Tensor(zeros: .float32, shape: plan.outputShape)
            try withExtendedLifetime((x, b, r, y)) {
                try winograd.forward(
                    input: x.unsafeElements(as: Float.self).address(), filters: filters, bias: b.unsafeElements(as: Float.self).address(),
                    residual: r.unsafeElements(as: Float.self).address(), activation: conv.activation,
                    output: y.unsafeMutableElements(as: Float.self).address(), runs: runs)
            }
            return try y.scalars(as: Float.self)
        }
        let stages = try output(runs: nil)
        #expect(stages.contains { $0 != 0 })
        for runs in [1, 2, 7, 23, 360] {
            #expect(try output(runs: runs).map(\.bitPattern) == stages.map(\.bitPattern), "\(runs) runs")
        }
    }
}

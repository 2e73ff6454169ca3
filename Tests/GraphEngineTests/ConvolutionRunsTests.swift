@testable import GraphEngine
import ONNXModel
import TensorCore
import Testing

/// How a convolution's positions are cut into runs, one pipeline per thread
/// (`Conv.pipelineChunk`): every thread gets the same number of runs, each run of whole vectors
/// and its columns within half of the level-2 cache (or one panel, where a patch is deeper).
@Suite struct ConvolutionRunsTests {
    /// ResNet-50's stem (12,544 positions) and layer2's stride-2 3×3 (784), at batch 1 and 3.
    @Test(arguments: [
        (input: [1, 3, 224, 224], weights: [64, 3, 7, 7], stride: 2, pad: 3),
        (input: [3, 3, 224, 224], weights: [64, 3, 7, 7], stride: 2, pad: 3),
        (input: [1, 128, 56, 56], weights: [128, 128, 3, 3], stride: 2, pad: 1),
        (input: [3, 128, 56, 56], weights: [128, 128, 3, 3], stride: 2, pad: 1),
    ])
    func runsSplitEvenlyOverTheThreads(_ c: (input: [Int], weights: [Int], stride: Int, pad: Int)) throws {
        // Each level with our products (the portable one pipelines nothing).
        for gemm in KernelLevel.supported.compactMap({ Kernels(level: $0)?.gemm }) {
            try checkRuns(c, gemm)
        }
    }

    func checkRuns(_ c: (input: [Int], weights: [Int], stride: Int, pad: Int), _ gemm: PackedGEMM) throws {
        let node = Node(
            name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
            attributes: ["strides": .ints([c.stride, c.stride]), "pads": .ints(Array(repeating: c.pad, count: 4))])
        let plan = try Conv(OpContext(node: node, opset: 17)).plan(input: c.input, weights: c.weights)
        guard let chunk = Conv.pipelineChunk(plan, gemm: gemm) else {
            // On two threads every cache leaves these layers at least four runs per thread.
            #expect(Parallel.width > 2, "not pipelined at \(gemm.level) on \(Parallel.width) threads")
            return
        }
        let runs = plan.batch * ((plan.outputSize + chunk - 1) / chunk)
        #expect(runs % Parallel.width == 0, "\(gemm.level): \(runs) runs of \(chunk) over \(Parallel.width) threads")
        #expect(chunk % gemm.lanes == 0)
        let cacheColumns = max(gemm.panelColumns, PackedGEMM.level2CacheBytes / 2 / (4 * plan.patch))
        #expect(chunk <= cacheColumns, "\(chunk) positions of \(plan.patch) floats")
    }
}

import Explain
import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// `generateBatch(_:targetClasses:batchSize:progress:)`: chunks, progress and cancellation.
@Suite struct AsyncGenerationTests {
    let generator: GradCAMHeatmapGenerator
    /// Five images: the fixture's two, the same scaled, and one more.
    let images: Tensor

    init() throws {
        let model = try Model(contentsOf: Fixtures.url("models/resnet_basic_ts17.onnx"))
        generator = try GradCAMHeatmapGenerator(model: model, targetLayer: "layer4")
        let two = try Tensor(npyAt: Fixtures.url("models/inputs/resnet_basic.npy")).scalars(as: Float.self)
        let scaled = two.map { $0 * 0.5 }
        images = try Tensor(shape: [5, 3, 64, 64], scalars: two + scaled + Array(two.prefix(two.count / 2).reversed()))
    }

    func chunk(_ range: Range<Int>) throws -> Tensor { try images.sliced(axis: 0, range) }

    @Test func mapsEqualTheSynchronousVariantsPerChunk() async throws {
        let recorded = Recorded<BatchProgress>()
        let maps = try await generator.generateBatch(images, batchSize: 2, progress: { recorded.append($0) })
        var expected: [Tensor] = []
        for range in [0..<2, 2..<4, 4..<5] { expected += try generator.generateBatch(chunk(range)) }
        #expect(maps.count == 5)
        for (map, reference) in zip(maps, expected) {
            #expect(try map.scalars(as: Float.self) == reference.scalars(as: Float.self))
        }
        // One report per chunk, strictly increasing, ending at the total.
        #expect(recorded.values == [BatchProgress(completed: 2, total: 5), BatchProgress(completed: 4, total: 5), BatchProgress(completed: 5, total: 5)])
        #expect(recorded.values.last?.fraction == 1)

        // One chunk of everything is the synchronous call itself; fixed classes pass through per chunk.
        let whole = try await generator.generateBatch(images, targetClasses: [1, 2, 3, 4, 5], batchSize: 5)
        let sync = try generator.generateBatch(images, targetClasses: [1, 2, 3, 4, 5])
        #expect(try whole.map { try $0.scalars(as: Float.self) } == sync.map { try $0.scalars(as: Float.self) })
        let split = try await generator.generateBatch(images, targetClasses: [1, 2, 3, 4, 5], batchSize: 3)
        let last = try generator.generateBatch(chunk(3..<5), targetClasses: [4, 5])
        #expect(try split[4].scalars(as: Float.self) == last[1].scalars(as: Float.self))
    }

    @Test func cancellationStopsBetweenChunks() async throws {
        let recorded = Recorded<BatchProgress>()
        // The callback runs on the generating task: cancelling the current task there lets the
        // chunk in hand finish and stops before the next one.
        let task = Task {
            try await generator.generateBatch(images, batchSize: 2, progress: { progress in
                recorded.append(progress)
                withUnsafeCurrentTask { $0?.cancel() }
            })
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(recorded.values == [BatchProgress(completed: 2, total: 5)])

        // Cancelled before it starts: no chunk runs.
        let early = Recorded<BatchProgress>()
        let cancelled = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await generator.generateBatch(images, batchSize: 2, progress: { early.append($0) })
        }
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(early.values.isEmpty)
    }

    @Test func badArgumentsAreTypedErrors() async throws {
        await #expect(throws: ExplainError.self) { try await generator.generateBatch(images, batchSize: 0) }
        await #expect(throws: ExplainError.self) { try await generator.generateBatch(images, targetClasses: [1], batchSize: 2) }
        await #expect(throws: ExplainError.self) { try await generator.generateBatch(chunk(0..<1).reshaped([3, 64, 64]), batchSize: 2) }
    }
}

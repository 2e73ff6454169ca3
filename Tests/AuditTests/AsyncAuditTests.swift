import Foundation
import ShortcutDetect
import TestSupport
import Testing

/// `Auditor.run` as an async call: the same state as the synchronous run, progress per batch, cancellation.
@Suite struct AsyncAuditTests {
    let auditor: Auditor
    let input: AuditInput
    let scratch: URL

    init() throws {
        let files = ["rgb8.png", "photo420.jpg", "gray8.png", "palette.png", "photo444.jpg", "gray.jpg", "rgba8.png"]
        scratch = try Fixtures.temporaryDirectory()
        let csv = scratch.appendingPathComponent("groups.csv")
        let rows = files.enumerated().map { "\($1),\($0 % 2 == 0 ? "site A" : "site B"),\($0 % 3)" }
        try (["file,group,label"] + rows).joined(separator: "\n").appending("\n").write(to: csv, atomically: true, encoding: .utf8)
        input = try AuditInput(csv: csv, folder: Fixtures.url("images"))
        let model = try Model(contentsOf: Fixtures.url("models/resnet_basic_ts17.onnx"))
        let generator = try GradCAMHeatmapGenerator(model: model, targetLayer: "layer4")
        let preprocessing = Preprocessing.evaluation(height: 64, width: 64)
        let mask = try RegionMask(rectangles: [(x: 0, y: 0, width: 16, height: 16)], height: 64, width: 64)
        let config = AuditConfig(
            model: "resnet_basic_ts17.onnx", layer: "layer4", tensor: generator.layers[0].tensor, method: "gradcam", maps: "normalized",
            target: "predicted", preprocessing: preprocessing.summary, mask: "rectangle", maskArea: mask.area, threshold: 0.5,
            iouFraction: 0.2, height: 64, width: 64, total: files.count, batchSize: 3)
        auditor = Auditor(generator: generator, preprocessing: preprocessing, mask: mask, target: .predicted, config: config)
    }

    /// Every file of a staging folder, by path relative to it.
    func contents(_ folder: URL) throws -> [String: Data] {
        let paths = FileManager.default.enumerator(atPath: folder.path)?.compactMap { $0 as? String } ?? []
        var files: [String: Data] = [:]
        for path in paths {
            var isFolder: ObjCBool = false
            let url = folder.appendingPathComponent(path)
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), !isFolder.boolValue {
                files[path] = try Data(contentsOf: url)
            }
        }
        return files
    }

    @Test func asyncRunEqualsTheSynchronousRun() async throws {
        let syncOutput = try OutputFolder(scratch.appendingPathComponent("sync"), overwrite: false)
        let asyncOutput = try OutputFolder(scratch.appendingPathComponent("async"), overwrite: false)
        // In an async context a plain call picks the async overload; a synchronous closure picks the other.
        let sync = try { try auditor.run(input, into: syncOutput) }()
        let recorded = Recorded<BatchProgress>()
        let index = try await auditor.run(input, into: asyncOutput, progress: { recorded.append($0) })
        #expect(index == sync)
        #expect(index.records == 7)
        let (a, b) = (try contents(syncOutput.staging), try contents(asyncOutput.staging))
        #expect(!a.isEmpty)
        #expect(a == b)
        #expect(recorded.values.map(\.completed) == [3, 6, 7])
        #expect(recorded.values.allSatisfy { $0.total == 7 })
    }

    @Test func cancellationStopsBetweenBatches() async throws {
        let output = try OutputFolder(scratch.appendingPathComponent("cancelled"), overwrite: false)
        let recorded = Recorded<BatchProgress>()
        let (auditor, input) = (auditor, input)
        let task = Task {
            try await auditor.run(input, into: output, progress: { progress in
                recorded.append(progress)
                withUnsafeCurrentTask { $0?.cancel() }
            })
        }
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(recorded.values.map(\.completed) == [3])
    }
}

/// `EmbeddingExtractor`: a layer's value pooled per image, as the CLI's `embed` and the audit read it.
@Suite struct EmbeddingExtractorTests {
    @Test func spatialLayersAreAveragedOverPositions() throws {
        let model = try Model(contentsOf: Fixtures.url("models/resnet_basic_ts17.onnx"))
        let input = try Tensor(npyAt: Fixtures.url("models/inputs/resnet_basic.npy"))
        let extractor = try EmbeddingExtractor(model: model, layer: "layer4")
        let rows = try extractor.embeddings(input)
        // The same tensor straight from the executor, [N, C, h, w], averaged by hand.
        let value = try #require(try extractor.executor.run([extractor.executor.inputs[0].name: input], fetch: [extractor.tensor])[extractor.tensor])
        let (n, c, size) = (value.shape[0], value.shape[1], value.shape[2] * value.shape[3])
        let values = try value.scalars(as: Float.self)
        let expected = (0..<n * c).map { plane in values[plane * size..<(plane + 1) * size].reduce(0, +) / Float(size) }
        #expect(rows == expected)
        #expect(rows.count == 2 * c)
        #expect(throws: AuditError.self) { try extractor.embeddings(input.reshaped([2 * 3, 64, 64])) }
    }
}

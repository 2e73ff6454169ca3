import Foundation
import ShortcutDetect

/// What each fuzz target does with one input: the code `tools/fuzz.sh` runs under libFuzzer (this
/// file is linked into `tools/fuzz`) and `FuzzRegressionTests` replays on every input that once
/// crashed. A target returns or throws one of our errors; anything else (a trap, a hang, a
/// sanitizer report) is the bug.
enum FuzzTargets {
    /// Target name -> what it runs. PNG and JPEG share the decoder entry and differ in their seeds.
    static let all: [String: @Sendable (Data) throws -> Void] = [
        "onnx": onnx, "npy": npy, "png": image, "jpeg": image, "csv": csv, "state": state,
    ]

    /// Runs target `name` on `data`; returns a description of what went wrong when it threw an
    /// error that is not one of ours (Foundation's, the standard library's: its text is not
    /// ours and names nothing), `nil` when it returned or threw ours.
    static func run(_ name: String, _ data: Data) -> String? {
        guard let target = all[name] else { return "no fuzz target named '\(name)'" }
        do { try target(data) } catch {
            let type = String(reflecting: Swift.type(of: error))
            let ours = ["TensorCore.", "ONNXModel.", "GraphEngine.", "Explain.", "Imaging.", "Detectors.", "Audit."]
            if !ours.contains(where: type.hasPrefix) { return "\(type): \(error)" }
        }
        return nil
    }

    /// The memory budget under fuzzing: declared sizes past it must end in an error.
    static let memoryBudget = 256 << 20

    /// The multiply-adds a forward pass may spend under fuzzing (inspection's probe included),
    /// where a 200-byte model can declare a 3-D transposed convolution of 10¹⁰: 20 times the
    /// largest seed fixture's pass (8.7 × 10⁵), and under a second on our slowest path (a 3-D
    /// transposed convolution, about 3 × 10⁷ a second under AddressSanitizer).
    static let workBudget = 1 << 24

    /// Decodes a model, inspects it, builds its executor and, when every input has a small fixed
    /// size (symbolic dimensions taken as 1), runs one forward pass on zeros, all within ``workBudget``.
    @Sendable static func onnx(_ data: Data) throws {
        try WorkBudget.withLimit(workBudget) { try onnxUnbounded(data) }
    }

    private static func onnxUnbounded(_ data: Data) throws {
        let model = try Model(serializedData: data)
        _ = ModelInspection(model: model)
        _ = LayerResolver(model: model).modules
        let executor = try Executor(model: model)
        var feeds: [String: Tensor] = [:]
        for input in executor.inputs where model.graph.initializers[input.name] == nil {
            guard let dtype = input.elementType, let dimensions = input.shape else { return }
            let shape = dimensions.map { dimension -> Int in
                if case .fixed(let size) = dimension { return size }
                return 1
            }
            // At most 4,096 elements, checked factor by factor so the product cannot overflow.
            var count = 1
            for size in shape {
                guard size >= 0, size <= 4096 else { return }
                count *= size
                guard count <= 4096 else { return }
            }
            feeds[input.name] = try Tensor(zeros: dtype, shape: shape)
        }
        _ = try executor.run(feeds)
    }

    @Sendable static func npy(_ data: Data) throws {
        _ = try Tensor(npyData: data, path: "fuzz.npy")
    }

    /// Decodes a PNG or JPEG with the size check preprocessing makes, then preprocesses it.
    @Sendable static func image(_ data: Data) throws {
        let preprocessing = Preprocessing(resize: 73, crop: (64, 64))
        let image = try RGBImage(data: data, path: "fuzz-image") { width, height in
            _ = try preprocessing.resizedSize(width: width, height: height)
        }
        _ = try preprocessing.tensor(image)
    }

    /// A scratch folder of its own for one input: replayed inputs run in parallel.
    static func scratchFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("shortcut-detect-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Reads a groups CSV as an audit does (scanned for rows and repeats, then streamed) and cuts
    /// it into a shard's batches.
    @Sendable static func csv(_ data: Data) throws {
        let folder = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("groups.csv")
        try data.write(to: url)
        let input = try AuditInput(csv: url, folder: folder)
        for batch in try input.batches(batchSize: 3, part: 2, of: 3) { _ = try batch.get() }
    }

    /// The parts of a ``state(_:)`` input, in order, joined by ``stateSeparator``: the files of one
    /// shard's `state/` folder, then the indices of the samples given an overlay (comma-separated)
    /// and the PNG each of them gets.
    static let stateFiles = [
        "state/config.json", "state/index.json", "state/sums.json", "state/records.jsonl", "state/issues.jsonl",
        "state/pooled.f32", "state/embeddings.f32", "overlay indices", "overlay png",
    ]
    static let stateSeparator = Data("\n#next-file#\n".utf8)

    /// Writes a shard report from the input (with a manifest that matches its files, as a careful
    /// forger would write one, so the checks behind the manifest's are reached), merges it and
    /// renders the merged report, as `merge` does.
    @Sendable static func state(_ data: Data) throws {
        let folder = try scratchFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let parts = split(data, separator: stateSeparator, parts: stateFiles.count)
        let shard = try OutputFolder(folder.appendingPathComponent("shard"), overwrite: false)
        try shard.createFolder("state/overlays")
        for (name, part) in zip(stateFiles, parts).prefix(7) where name != "state/embeddings.f32" || !part.isEmpty {
            try shard.write(part, to: name)
        }
        // Numbers only: a name from the input must not lead out of the scratch folder.
        let indices = String(decoding: parts[7], as: UTF8.self).split(separator: ",").prefix(64).compactMap { Int($0) }
        for index in Set(indices) { try shard.write(parts[8], to: "state/overlays/\(index).png") }
        // The manifest repeats the settings; a config.json that does not decode gets the seed's,
        // and the state's own check reports it.
        let config = (try? JSONDecoder().decode(AuditConfig.self, from: parts[0])) ?? seedConfig
        try shard.commit(kind: AuditRunConfiguration.kind, producer: "fuzz", configuration: AuditRunConfiguration(config, shard: "1/1"))
        let merged = try OutputFolder(folder.appendingPathComponent("merged"), overwrite: false)
        try AuditReport.merge([shard.destination], into: merged)
        try AuditReport.write(into: merged)
        merged.discard()
    }

    /// The settings of ``stateSeed()``: an 8 x 8 audit of four images with a region.
    static let seedConfig = AuditConfig(
        model: "model.onnx", layer: "layer4", tensor: "t", method: "gradcam", maps: "normalized", target: "predicted",
        preprocessing: "resize 73, crop 8x8", mask: "rectangles 0,0,2,2", maskArea: 0.0625, threshold: 0.1, iouFraction: 0.5,
        height: 8, width: 8, total: 4, batchSize: 2)

    /// A valid input for ``state(_:)``: four samples of an 8 x 8 audit in two groups, every one
    /// shown in the report (three per group and end are), so each has an overlay.
    static func stateSeed() -> Data {
        /// An RGB image's PNG bytes, through the public writer (these targets are built outside the package too).
        func pngData(width: Int, height: Int, pixels: [UInt8]) -> Data {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-seed-\(UUID().uuidString).png")
            defer { try? FileManager.default.removeItem(at: url) }
            guard let image = try? RGBImage(width: width, height: height, pixels: pixels), (try? PNG.write(image, to: url)) != nil
            else { return Data() }
            return (try? Data(contentsOf: url)) ?? Data()
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let config = (try? encoder.encode(seedConfig)) ?? Data()
        let index = Data(#"{"embeddingWidth": 0, "groups": {"A": 2, "B": 2}, "issues": 0, "records": 4}"#.utf8)
        let records = (0..<4).map { i in
            """
            {"confidence": 0.75, "file": "img_\(i).png", "group": "\(i % 2 == 0 ? "A" : "B")", "index": \(i), "label": \(i % 2), \
            "predicted": \(i % 2), "target": \(i % 2), "scores": {"inMask": 0.\(i + 1), "pointingHit": \(i == 0), "iou": 0.2}}
            """
        }.joined(separator: "\n") + "\n"
        // Each sample's map (an 8 x 8 map pools to itself), and each group's sums of its maps in
        // 40.24 fixed point, which merge checks against the pooled maps.
        let maps = (0..<4).map { i in (0..<64).map { Float(($0 + i) % 8) / 8 } }
        var sums: [String: [Int64]] = [:]
        for (i, map) in maps.enumerated() {
            let fixed = map.map { Int64((Double($0) * Double(1 << 24)).rounded()) }
            sums[i % 2 == 0 ? "A" : "B"] = zip(sums[i % 2 == 0 ? "A" : "B"] ?? Array(repeating: 0, count: 64), fixed).map { $0 + $1 }
        }
        let pooled = maps.flatMap { $0 }.withUnsafeBytes { Data($0) }
        // The image beside its overlay, 2 pixels apart: 18 x 8.
        let overlay = pngData(width: 18, height: 8, pixels: (0..<18 * 8 * 3).map { UInt8($0 % 251) })
        let files = [config, index, (try? encoder.encode(sums)) ?? Data(), Data(records.utf8), Data(), pooled, Data(), Data("0,1,2,3".utf8), overlay]
        return files.dropFirst().reduce(files[0]) { $0 + stateSeparator + $1 }
    }

    /// `data` cut at the first `parts - 1` occurrences of `separator` (missing parts are empty).
    static func split(_ data: Data, separator: Data, parts: Int) -> [Data] {
        var pieces: [Data] = []
        var rest = data[...]
        while pieces.count < parts - 1, let range = rest.range(of: separator) {
            pieces.append(Data(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        pieces.append(Data(rest))
        return pieces + Array(repeating: Data(), count: parts - pieces.count)
    }
}

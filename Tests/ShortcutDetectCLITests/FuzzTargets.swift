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

    /// Decodes a model, inspects it, builds its executor and, when every input has a small fixed
    /// size (symbolic dimensions taken as 1), runs one forward pass on zeros.
    @Sendable static func onnx(_ data: Data) throws {
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
            guard shape.count <= 6, let count = MemoryBudget.product(shape), count <= 4096 else { return }
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

    /// Parses a groups CSV and cuts the audit into shards' batches.
    @Sendable static func csv(_ data: Data) throws {
        let samples = try AuditSample.parse(csv: String(decoding: data, as: UTF8.self), path: "groups.csv")
        _ = Auditor.batches(samples, batchSize: 3, part: 2, of: 3)
    }

    /// The files of one shard's `state/` folder, in the order ``stateFiles`` names them, joined by
    /// ``stateSeparator``.
    static let stateFiles = ["config.json", "records.json", "sums.json", "pooled.f32"]
    static let stateSeparator = Data("\n#next-file#\n".utf8)

    /// Loads a shard state written from the input, merges it and renders the report, as `merge` does.
    @Sendable static func state(_ data: Data) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("shortcut-detect-fuzz-\(ProcessInfo.processInfo.processIdentifier)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let stateFolder = folder.appendingPathComponent("report/state")
        try FileManager.default.createDirectory(at: stateFolder, withIntermediateDirectories: true)
        for (name, part) in zip(stateFiles, split(data, separator: stateSeparator, parts: stateFiles.count)) {
            try part.write(to: stateFolder.appendingPathComponent(name))
        }
        let merged = try AuditState.merge([try AuditState.load(from: folder.appendingPathComponent("report"))])
        try AuditReport(state: merged).write(to: folder.appendingPathComponent("merged"))
    }

    /// A valid input for ``state(_:)``: four samples of an 8 x 8 audit in two groups.
    static func stateSeed() -> Data {
        let config = """
            {"batchSize": 2, "height": 8, "width": 8, "iouFraction": 0.5, "layer": "layer4", "maps": "normalized",
             "mask": "rectangles 0,0,2,2", "maskArea": 0.0625, "method": "gradcam", "model": "model.onnx",
             "preprocessing": "resize 73, crop 8x8", "target": "predicted", "tensor": "t", "threshold": 0.1, "total": 4}
            """
        let records = (0..<4).map { i in
            """
            {"confidence": 0.75, "file": "img_\(i).png", "group": "\(i % 2 == 0 ? "A" : "B")", "index": \(i), "label": \(i % 2),
             "predicted": \(i % 2), "target": \(i % 2), "scores": {"inMask": 0.\(i + 1), "pointingHit": \(i == 0), "iou": 0.2}}
            """
        }
        // Each group's sum of two maps in 40.24 fixed point (see AuditState), and each sample's map pooled.
        let sums = ["A", "B"].map { group in
            "\"\(group)\": [" + (0..<64).map { String(($0 % 8 + (group == "A" ? 0 : $0 / 8)) << 21) }.joined(separator: ", ") + "]"
        }
        let pooled = (0..<4 * 64).map { Float($0 % 8) / 8 }
        let files = [Data(config.utf8), Data(("[" + records.joined(separator: ", ") + "]").utf8),
                     Data(("{" + sums.joined(separator: ", ") + "}").utf8), pooled.withUnsafeBytes { Data($0) }]
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

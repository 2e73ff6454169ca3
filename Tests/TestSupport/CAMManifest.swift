import Foundation

/// `Fixtures/cam/manifest.json`, written by `tools/export_cam_goldens.py` from PyTorch autograd
/// and pytorch-grad-cam.
public struct CAMManifest: Decodable, Sendable {
    public struct Entry: Decodable, Sendable {
        public struct Method: Decodable, Sendable {
            public let heatmap: String
            public let raw: String?
            public let svd_max_abs_entry_positive: [Bool]?
        }

        public struct Variant: Decodable, Sendable {
            public let heatmap: String
            public let raw: String?
            public let layers: [String]?
            public let svd_max_abs_entry_positive: [Bool]?
        }

        public let arch: String
        public let fixtures: [String]
        public let input: String
        public let layer: String
        public let layers_two: [String]
        public let prefix_tokens: Int?
        public let grid: [Int]?
        /// How pytorch-grad-cam's reshape transform read the layer: `nchw`, `nhwc` or `tokens`.
        public let layer_layout: String
        public let classes: [Int]
        public let methods: [String: Method]
        public let variants: [String: Variant]
        public let guided_backprop: String
        public let gradients: [String: String]
    }

    public let models: [Entry]

    /// The committed manifest, or `nil` when it cannot be read (tests then fail on its absence).
    public static let committed: CAMManifest? = {
        guard let data = try? Data(contentsOf: Fixtures.url("cam/manifest.json")) else { return nil }
        return try? JSONDecoder().decode(CAMManifest.self, from: data)
    }()

    /// Every (architecture, exported fixture) pair: CAM goldens hold for each export of an architecture.
    public static var exports: [CAMExport] {
        (committed?.models ?? []).flatMap { entry in entry.fixtures.map { CAMExport(entry: entry, fixture: $0) } }
    }
}

/// One exported model of an architecture with CAM goldens.
public struct CAMExport: Sendable, CustomStringConvertible {
    public let entry: CAMManifest.Entry
    public let fixture: String
    public var description: String { fixture }
    public var modelURL: URL { Fixtures.url("models/\(fixture).onnx") }
    public func golden(_ path: String) -> URL { Fixtures.url(path) }
}

import Foundation

/// `Fixtures/exporters/manifest.json`, written by `tools/export_exporter_fixtures.py`: models that
/// tf2onnx (Keras) and paddle2onnx (PaddlePaddle) exported, with onnxruntime's outputs and the
/// framework's own GradCAM maps.
public struct ExporterManifest: Decodable, Sendable {
    public struct Entry: Decodable, Sendable, CustomStringConvertible {
        public struct Output: Decodable, Sendable {
            public let tensor: String
            public let file: String
            public let role: String
        }

        /// The layer GradCAM is checked at and what the framework's autodiff gave there.
        public struct CAM: Decodable, Sendable {
            /// The tensor: the input of the graph's last global average pool.
            public let layer: String
            /// `NCHW`, or `NHWC` where the exporter kept Keras's channels-last layout.
            public let layout: String
            public let classes: [Int]
            /// `[N, h, w]` map before ReLU and scaling.
            public let raw: String
            public let reference: String
        }

        public let name: String
        public let file: String
        public let framework: String
        public let opset: Int
        public let input_layout: String
        public let input: String
        public let outputs: [Output]
        public let cam: CAM

        public var description: String { name }
        public var modelURL: URL { Fixtures.url("exporters/\(file)") }
    }

    public let models: [Entry]

    /// The committed manifest, or `nil` when it cannot be read (tests then fail on its absence).
    public static let committed: ExporterManifest? = {
        guard let data = try? Data(contentsOf: Fixtures.url("exporters/manifest.json")) else { return nil }
        return try? JSONDecoder().decode(ExporterManifest.self, from: data)
    }()
}

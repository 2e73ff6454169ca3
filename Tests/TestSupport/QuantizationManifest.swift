import Foundation
import TensorCore

/// `Fixtures/quantization/manifest.json`, written by `tools/export_quantization_goldens.py`.
public struct QuantizationManifest: Decodable, Sendable {
    public struct Case: Decodable, Sendable {
        public let name: String
    }

    public struct StraightThrough: Decodable, Sendable {
        public let name: String
        public let axis: Int?
        public let dtype: String
        public let saturatedElements: Int

        enum CodingKeys: String, CodingKey {
            case name, axis, dtype
            case saturatedElements = "saturated_elements"
        }

        public func tensor(_ file: String) throws -> Tensor { try Tensor(npyAt: Fixtures.url("quantization/ste/\(name)/\(file).npy")) }
    }

    public struct QDQModel: Decodable, Sendable {
        public let name, file, input, logits: String
        /// The scale of the DequantizeLinear that outputs the logits: one quantum.
        public let logitsScale: Double

        enum CodingKeys: String, CodingKey {
            case name, file, input, logits
            case logitsScale = "logits_scale"
        }
    }

    public let cases: [Case]
    public let ste: [StraightThrough]
    public let models: [QDQModel]

    public static let committed: QuantizationManifest? = {
        guard let data = try? Data(contentsOf: Fixtures.url("quantization/manifest.json")) else { return nil }
        return try? JSONDecoder().decode(QuantizationManifest.self, from: data)
    }()
}

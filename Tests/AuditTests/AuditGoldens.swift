import Foundation
import ShortcutDetect
import TestSupport

extension AuditGoldens {
    /// The fixture images as the models take them: 64x64 as they are, Normalize(0.5, 0.5).
    static func inputs(_ files: [String]) throws -> Tensor {
        let preprocessing = Preprocessing(resize: nil, crop: nil, normalization: .half)
        let tensors = try files.map { try preprocessing.tensor(RGBImage(contentsOf: Fixtures.url("audit/images/\($0)"))) }
        return try Tensor(shape: [files.count, 3, 64, 64], scalars: tensors.flatMap { try $0.scalars(as: Float.self) })
    }

    static func executor(_ model: String) throws -> Executor {
        try Executor(model: Model(contentsOf: Fixtures.url("audit/\(model).onnx")))
    }
}

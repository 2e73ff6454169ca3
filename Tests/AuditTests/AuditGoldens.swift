import Foundation
import ShortcutDetect
import TestSupport

/// Fixtures/audit/goldens/reference.json (tools/export_audit_goldens.py): onnxruntime,
/// pytorch-grad-cam 1.5.7 and shortkit-ml 0.1.0 on the planted-shortcut fixtures.
struct AuditGoldens: Decodable {
    struct Settings: Decodable {
        let seed: UInt32
        let road_percentiles: [Int]
        let auc_steps: Int
        let cam_rows: [Int]
    }
    struct DefaultPath: Decodable {
        let file: String
        let predicted: Int
        let probabilities: [Double]
        let in_mask: Double
    }
    struct CounterfactualSample: Decodable {
        let file: String
        let predicted: Int
        let confidence: Double
        let predicted_cf: Int
        let confidence_cf: Double
    }
    struct CounterfactualGroup: Decodable {
        let n: Int
        let flip_rate: Double
        let confidence_drop: Double
        let accuracy: Double?
        let accuracy_counterfactual: Double?
        let by_label: [String: CounterfactualGroup]?
    }
    struct Counterfactual: Decodable {
        let samples: [CounterfactualSample]
        let groups: [String: CounterfactualGroup]
    }
    struct Faithfulness: Decodable {
        let cam_mult_confidence_change: Double
        let drop_in_confidence: Double
        let increase_in_confidence: Double
        let road_most_relevant_first: [String: Double]
        let road_least_relevant_first: [String: Double]
        let road_combined: Double
        let deletion_auc: Double
        let insertion_auc: Double
    }
    struct SpRAyCluster: Decodable {
        let size: Int
        let label_purity: Double?
        let group_purity: Double?
        let focus_mean: Double
        let focus_std: Double
    }
    struct SpRAy: Decodable {
        let n_clusters: Int
        let cluster_labels: [Int]
        let clusters: [SpRAyCluster]
        let silhouette: Double?
        let laplacian_eigenvalues: [Double]
        let focus: [Double]
        struct Flags: Decodable { let flags: [String] }
        let clever_hans: Flags
    }
    struct ModelEntry: Decodable {
        let default_path: [DefaultPath]
        let counterfactual: [String: Counterfactual]
        let faithfulness: [Faithfulness]
        let spray: SpRAy
    }
    let files: [String]
    let groups: [String]
    let labels: [Int]
    let settings: Settings
    let models: [String: ModelEntry]

    static func load() throws -> AuditGoldens {
        try JSONDecoder().decode(AuditGoldens.self, from: Data(contentsOf: Fixtures.url("audit/goldens/reference.json")))
    }

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

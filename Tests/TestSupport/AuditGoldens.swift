import Foundation

/// Fixtures/audit/goldens/reference.json (tools/export_audit_goldens.py): onnxruntime,
/// pytorch-grad-cam 1.5.7 and shortkit-ml 0.1.0 on the planted-shortcut fixtures.
public struct AuditGoldens: Decodable {
    public struct Settings: Decodable {
        public let seed: UInt32
        public let road_percentiles: [Int]
        public let auc_steps: Int
        public let cam_rows: [Int]
    }
    public struct DefaultPath: Decodable {
        public let file: String
        public let predicted: Int
        public let probabilities: [Double]
        public let in_mask: Double
    }
    public struct CounterfactualSample: Decodable {
        public let file: String
        public let predicted: Int
        public let confidence: Double
        public let predicted_cf: Int
        public let confidence_cf: Double
    }
    public struct CounterfactualGroup: Decodable {
        public let n: Int
        public let flip_rate: Double
        public let confidence_drop: Double
        public let accuracy: Double?
        public let accuracy_counterfactual: Double?
        public let by_label: [String: CounterfactualGroup]?
    }
    public struct Counterfactual: Decodable {
        public let samples: [CounterfactualSample]
        public let groups: [String: CounterfactualGroup]
    }
    public struct Faithfulness: Decodable {
        public let cam_mult_confidence_change: Double
        public let drop_in_confidence: Double
        public let increase_in_confidence: Double
        public let road_most_relevant_first: [String: Double]
        public let road_least_relevant_first: [String: Double]
        public let road_combined: Double
        public let deletion_auc: Double
        public let insertion_auc: Double
    }
    public struct SpRAyCluster: Decodable {
        public let size: Int
        public let label_purity: Double?
        public let group_purity: Double?
        public let focus_mean: Double
        public let focus_std: Double
    }
    public struct SpRAy: Decodable {
        public let n_clusters: Int
        public let cluster_labels: [Int]
        public let clusters: [SpRAyCluster]
        public let silhouette: Double?
        public let laplacian_eigenvalues: [Double]
        public let focus: [Double]
        public struct Flags: Decodable { public let flags: [String] }
        public let clever_hans: Flags
    }
    public struct ModelEntry: Decodable {
        public let default_path: [DefaultPath]
        public let counterfactual: [String: Counterfactual]
        public let faithfulness: [Faithfulness]
        public let spray: SpRAy
    }
    public let files: [String]
    public let groups: [String]
    public let labels: [Int]
    public let settings: Settings
    public let models: [String: ModelEntry]

    public static func load() throws -> AuditGoldens {
        try JSONDecoder().decode(AuditGoldens.self, from: Data(contentsOf: Fixtures.url("audit/goldens/reference.json")))
    }
}

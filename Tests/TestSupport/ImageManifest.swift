import Foundation

/// The whole-path section of `Fixtures/images/manifest.json` (tools/export_image_goldens.py):
/// image file -> torchvision tensor -> pytorch-grad-cam heatmap -> `show_cam_on_image` PNG.
public struct ImagePathManifest: Decodable, Sendable {
    public struct Model: Decodable, Sendable {
        public let fixtures_checked: [String]
        public let target_layer: String
        public let runs: [Run]
    }

    public struct Run: Decodable, Sendable {
        public let image: String
        public let R: Int
        public let C: Int
        public let input: String?
        public let predicted_class: Int
        public let heatmap: String
        public let overlay: String
        public let guided_backprop: String?
        public let guided_gradcam: String?
    }

    struct Root: Decodable {
        struct WholePath: Decodable { let models: [String: Model] }
        let whole_path: WholePath
    }

    /// Model name -> its runs.
    public let models: [String: Model]

    public static let committed: ImagePathManifest? = {
        guard let data = try? Data(contentsOf: Fixtures.url("images/manifest.json")),
            let root = try? JSONDecoder().decode(Root.self, from: data)
        else { return nil }
        return ImagePathManifest(models: root.whole_path.models)
    }()

    /// Every (export, run) pair.
    public static var cases: [ImagePathCase] {
        (committed?.models ?? [:]).sorted { $0.key < $1.key }.flatMap { name, model in
            model.fixtures_checked.flatMap { fixture in model.runs.map { ImagePathCase(model: name, fixture: fixture, layer: model.target_layer, run: $0) } }
        }
    }
}

public struct ImagePathCase: Sendable, CustomStringConvertible {
    public let model: String
    public let fixture: String
    public let layer: String
    public let run: ImagePathManifest.Run
    public var description: String { "\(fixture) \(run.image)" }
}

import Foundation
import ShortcutDetect

/// What `gradcam` found and wrote: printed per image as it goes, or gathered into one JSON object
/// for `--json`.
final class GradCAMReport: Sendable {
    struct Prediction: Encodable {
        let `class`: Int
        /// The class's name from `--labels`.
        let label: String?
        let probability: Double
    }

    struct Image: Encodable {
        /// The image file's name, or `#i` for sample i of an `--input` batch.
        let name: String
        /// The most probable classes, most probable first.
        let top: [Prediction]
        /// The classes explained (several with `--top-k`).
        let explained: [Int]
        /// The files written for this image.
        var outputs: [String] = []
    }

    struct Layer: Encodable {
        /// As `--layer` named it (or as suggested).
        let request: String
        let tensor: String
    }

    struct Summary: Encodable {
        let model: String
        let method: String
        /// The model output explained.
        let output: String
        let layers: [Layer]
        var images: [Image] = []
        /// Files written for the whole run: the `--output` heatmaps, `--raw`, `--metrics-json`.
        var outputs: [String] = []
    }

    private let summary: Locked<Summary>
    private let json: Bool
    private let labels: [String]?

    init(model: String, method: String, generator: GradCAMHeatmapGenerator, labels: [String]?, json: Bool) {
        summary = Locked(Summary(
            model: model, method: method, output: generator.outputName,
            layers: generator.layers.map { Layer(request: $0.request, tensor: $0.tensor) }))
        self.labels = labels
        self.json = json
    }

    /// Records one image's most probable classes (`count` of them) and the classes explained; prints
    /// them as `name: class 41.0%, ...` without `--json`.
    func predicted(_ name: String, probabilities: [Double], count: Int, explained: [Int]) {
        let top = ClassProbabilities.ranked(probabilities).prefix(max(count, 1)).map { c in
            Prediction(class: c, label: labels.map { c < $0.count ? $0[c] : "\(c)" }, probability: probabilities[c])
        }
        summary.update { $0.images.append(Image(name: name, top: Array(top), explained: explained)) }
        Console.say("\(name): " + top.map { "\($0.label ?? "\($0.class)") \(String(format: "%.1f%%", 100 * $0.probability))" }.joined(separator: ", "))
    }

    /// Records the files written for the image at `index` (in the order ``predicted(_:probabilities:count:explained:)`` saw them).
    func wrote(image index: Int, files: [String]) {
        summary.update { summary in
            guard summary.images.indices.contains(index) else { return }
            summary.images[index].outputs += files
        }
    }

    /// Records a file written for the whole run, and says so.
    func wrote(_ file: String, _ sentence: String) {
        summary.update { $0.outputs.append(file) }
        Console.say(sentence)
    }

    /// With `--json`: prints the summary on standard output.
    func finish() throws {
        if json { try Console.json(summary.value) }
    }
}

import ArgumentParser
import Foundation
import ShortcutDetect

/// `shortcut-detect compare-heads`: do two outputs of one model look at the same place?
struct CompareHeadsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare-heads",
        abstract: "Compare where the heads of a multi-output model look: Dice, IoU and cosine of their heatmaps.",
        usage: """
            shortcut-detect compare-heads <model> --head <NAME> --head <NAME> ... (--input <PATH> | --image <PATH> ... | --images <DIR>) [<options>]
            """,
        discussion: """
            Each --head names a model output (`inspect` lists them). Every head's heatmap explains its own \
            prediction at --layer (default: the layer `inspect` suggests); each pair of heads is compared per \
            image and on average: Dice and IoU of the maps thresholded at --threshold, and the cosine \
            similarity of the maps (the reference's calculate_overlap). Does the model look at the same place \
            to predict the disease as to predict the protected attribute?
            """)

    @Argument(help: "The .onnx model file.")
    var model: String

    @Option(help: ArgumentHelp("A model output to explain; give two or more.", valueName: "NAME"))
    var head: [String] = []

    @Option(help: ArgumentHelp("Target layer (module path, node or tensor name). Default: the layer `inspect` suggests.", valueName: "LAYER"))
    var layer: String?

    @Option(help: ArgumentHelp("How the layer holds channels (default: from the graph and the shape).", valueName: "LAYOUT"))
    var layerLayout: LayerLayout?

    @Option(help: ArgumentHelp("Images as a float32 .npy of shape [N, C, H, W] ([N, H, W, C] for a channels-last model), already preprocessed; - for standard input.", valueName: "PATH"))
    var input: String?

    @Option(help: ArgumentHelp("An image file (PNG or JPEG); repeatable.", valueName: "PATH"))
    var image: [String] = []

    @Option(help: ArgumentHelp("A folder of PNG and JPEG images.", valueName: "DIR"))
    var images: String?

    @OptionGroup var preprocessing: PreprocessingOptions

    @Option(help: ArgumentHelp("The CAM method.", valueName: "NAME"))
    var method: CAMMethodName = .gradcam

    @Option(help: ArgumentHelp("Heatmap value at or above which a pixel counts as attended.", valueName: "T"))
    var threshold: Double = 0.5

    @Option(help: ArgumentHelp("Also write the numbers as JSON; - prints them on standard output instead of the text.", valueName: "PATH"))
    var json: String?

    @OptionGroup var resources: ResourceOptions

    @OptionGroup var console: ConsoleOptions

    func validate() throws {
        try FlagCheck.number(threshold, "--threshold", in: 0...1)
        try FlagCheck.outputsSpareInputs(json.map { [("--json", $0)] } ?? [], inputs: [("model", model)] + (input.map { [("--input", $0)] } ?? []))
        try StandardStreams.check(inputs: input.map { [("--input", $0)] } ?? [], outputs: [])
        guard Set(head).count >= 2, Set(head).count == head.count else { throw ValidationError("give two or more different --head outputs") }
        guard [input != nil, !image.isEmpty, images != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --input, --image or --images")
        }
        guard method.camMethod != nil, method != .guidedGradCAM else { throw ValidationError("compare-heads needs a CAM method, not \(method.rawValue)") }
    }

    func run() throws {
        if json == StandardStreams.dash { Console.channel = .json }
        let loaded = try loadModel(model)
        let layer = try LayerChoice.layer(self.layer, model: loaded, size: preprocessing.size)
        let options = CAMOptions(layerLayout: layerLayout, inputLayout: preprocessing.inputLayout)
        let generators = try head.map {
            try GradCAMHeatmapGenerator(model: loaded, targetLayer: layer, method: method.camMethod ?? .gradCAM, options: options, output: $0)
        }
        let (batch, names) = try inputs(generators[0].executor)
        let results = try generators.map { generator in
            try Console.timed("explained \(generator.outputName)") { try generator.explain(batch) }
        }

        var pairs: [[String: Any]] = []
        for a in head.indices {
            for b in head.indices where b > a {
                let overlap = try HeadOverlap.compare(results[a].heatmaps, results[b].heatmaps, threshold: threshold)
                Console.say("\(head[a]) vs \(head[b]) at \(layer) (\(method.rawValue), threshold \(threshold)):")
                for (n, scores) in overlap.perImage.enumerated() {
                    Console.say("  \(names[n]): dice \(fixed(scores.dice)) iou \(fixed(scores.iou)) cosine \(fixed(scores.cosine))")
                }
                Console.say("  mean over \(names.count) image(s): dice \(fixed(overlap.mean.dice)) iou \(fixed(overlap.mean.iou)) cosine \(fixed(overlap.mean.cosine))")
                func entry(_ s: HeadOverlap.Scores) -> [String: Double] { ["dice": s.dice, "iou": s.iou, "cosine": s.cosine] }
                pairs.append(["heads": [head[a], head[b]], "per_image": overlap.perImage.map(entry), "mean": entry(overlap.mean)])
            }
        }
        if let json {
            let root: [String: Any] = [
                "model": (model as NSString).lastPathComponent, "layer": layer, "tensor": generators[0].layers[0].tensor,
                "method": method.rawValue, "threshold": threshold, "images": names, "pairs": pairs,
                "classes": Dictionary(uniqueKeysWithValues: zip(head, results.map(\.classes))),
            ]
            guard json != StandardStreams.dash else { return try Console.json(object: root) }
            try FileIO.write(JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys]), to: URL(fileURLWithPath: json))
            Console.say("wrote \(json)")
        }
    }

    /// The batch to explain and a name per image.
    private func inputs(_ executor: Executor) throws -> (Tensor, [String]) {
        if let input {
            let batch = try StandardStreams.readNPY(input, flag: "--input")
            guard batch.rank == 4 else { throw CommandFailure(description: "--input must be a 4-D batch of images, got shape \(batch.shape)") }
            return (batch, (0..<batch.shape[0]).map { "#\($0)" })
        }
        var files = image.map { URL(fileURLWithPath: $0) }
        if let images {
            let listed: [String]
            do { listed = try FileIO.contentsOfFolder(URL(fileURLWithPath: images)) } catch let error as FileError {
                throw ValidationError("cannot list --images \(images): \(error.reason)")
            }
            files = listed.filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
                .map { URL(fileURLWithPath: images).appendingPathComponent($0) }
            guard !files.isEmpty else { throw ValidationError("no .png, .jpg or .jpeg files in \(images)") }
        }
        let (batch, _, _) = try preprocessing.make(for: executor).batch(files)
        return (batch, files.map(\.lastPathComponent))
    }

    private func fixed(_ value: Double) -> String { String(format: "%.4f", value) }
}

import ArgumentParser
import Foundation
import ShortcutDetect

/// `shortcut-detect gradcam`: heatmaps of a batch of preprocessed images at chosen layers.
struct GradCAMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcam",
        abstract: "Compute class activation maps for image files or a NumPy batch.",
        usage: """
            shortcut-detect gradcam <model> (--image <PATH> ... | --images <DIR>) --out <DIR> [<options>]
            shortcut-detect gradcam <model> --input <PATH> --output <PATH> [<options>]
            """,
        discussion: """
            With --image or --images, each image is preprocessed as torchvision does (resize the shorter side, \
            centre-crop to the model's input size, or to --size HxW where the model leaves it free, normalize) \
            and OUT/<stem>.png gets the heatmap drawn over it (OUT/<stem>.npy with --save-npy, \
            OUT/<stem>_panel.png with --panel); the most probable classes of each image are printed.

            With --input (a preprocessed float32 batch, [N, C, H, W], or [N, H, W, C] for a channels-last \
            model), --output gets float32 [N, H, W] heatmaps (guided-backprop and guided-gradcam write \
            [N, H, W, 3]) and --raw the first layer's map before ReLU and scaling, [N, h, w]; either may be - \
            (standard input or output).

            Without --layer, the layer `inspect` suggests is explained (standard error names it). Layers are \
            read as [N, C, h, w] maps, [N, h, w, C] maps or [N, tokens, C] tokens as the graph and the \
            tensor's shape say; --layer-layout overrides. --json prints, instead of the text, one JSON object: \
            per image its top classes with their probabilities, the classes explained and the files written; \
            the method, the layers and the output explained.
            """)

    @Argument(help: "The .onnx model file.")
    var model: String

    @Option(help: ArgumentHelp("Images as a float32 .npy of shape [N, C, H, W] ([N, H, W, C] for a channels-last model), already preprocessed; - for standard input.", valueName: "PATH"))
    var input: String?

    @OptionGroup var images: ImageOptions

    @Option(help: ArgumentHelp("Target layer: module path (layer4, features.29, blocks[-1].norm1), node or tensor name. Repeat to average layers. Default: the layer `inspect` suggests.", valueName: "LAYER"))
    var layer: [String] = []

    @Option(name: .customLong("class"), help: ArgumentHelp("Class to explain: one for all samples, or one per sample (comma-separated). Default: each sample's prediction.", valueName: "C"))
    var targetClass: String?

    @Option(help: ArgumentHelp("The CAM method.", valueName: "NAME"))
    var method: CAMMethodName = .gradcam

    @Option(help: ArgumentHelp("The model output to explain, for a model with several heads (default: the first).", valueName: "NAME"))
    var outputName: String?

    @Option(help: ArgumentHelp("With --input: where to write the heatmaps (.npy); - for standard output.", valueName: "PATH"))
    var output: String?

    @Option(help: ArgumentHelp("With --input: where to write the raw layer map (.npy); - for standard output.", valueName: "PATH"))
    var raw: String?

    @Flag(help: "Replace the channel sum by the first principal component (eigen smoothing).")
    var eigenSmooth = false

    @Flag(help: "Average over flipped and rescaled copies of the input (augmentation smoothing).")
    var augSmooth = false

    @Option(help: ArgumentHelp("Heatmap scaling: minmax as pytorch-grad-cam, none keeps raw units.", valueName: "MODE"))
    var normalization: HeatmapNormalization = .minMax

    @Option(help: ArgumentHelp("How maps are upsampled to the input: bilinear as pytorch-grad-cam, nearest as Captum.", valueName: "MODE"))
    var upsampling: MapResize = .bilinear

    @Option(help: ArgumentHelp("Token layout for transformer layers, PREFIX:HxW (e.g. 1:14x14). Default: inferred.", valueName: "SPEC"))
    var tokenGrid: String?

    @Option(help: ArgumentHelp("How the layers hold channels (default: from the graph and the shape).", valueName: "LAYOUT"))
    var layerLayout: LayerLayout?

    @Option(name: .customLong("metrics-json"), help: ArgumentHelp("Also write the maps' faithfulness metrics (pytorch-grad-cam's ROAD, input x map; deletion and insertion AUC) per sample.", valueName: "PATH"))
    var metricsJSON: String?

    @Option(name: .customLong("road-percentiles"), help: ArgumentHelp("The percentiles ROAD removes pixels at.", valueName: "P,P,..."))
    var roadPercentiles: String = "20,40,60,80"

    @Option(help: ArgumentHelp("Seed of ROAD's imputation noise.", valueName: "S"))
    var seed: UInt32 = 0

    @Option(name: .customLong("output-kind"), help: ArgumentHelp("How to read the model's output: logits are softmaxed, probabilities used as they are (default: probabilities when the graph ends in Softmax, else decided per row).", valueName: "KIND"))
    var outputKind: OutputKind?

    @OptionGroup var result: JSONOption

    @OptionGroup var resources: ResourceOptions

    @OptionGroup var console: ConsoleOptions

    func validate() throws {
        if tokenGrid != nil, let layerLayout, layerLayout != .tokens(nil) {
            throw ValidationError("--token-grid lays out tokens; it does not go with --layer-layout \(layerLayout)")
        }
        let sources = [input != nil, !images.image.isEmpty, images.images != nil].filter { $0 }.count
        guard sources == 1 else { throw ValidationError("give exactly one of --input, --image or --images") }
        if input != nil && output == nil { throw ValidationError("--input needs --output HEAT.npy") }
        if input == nil && images.out == nil { throw ValidationError("--image/--images need --out DIR") }
        if images.topK != nil && targetClass != nil { throw ValidationError("use --class or --top-k, not both") }
        if let tokenGrid { _ = try FlagCheck.tokenGrid(tokenGrid) }
        _ = try parseClasses(count: 1, checkingCount: false)
        let inputs = [("model", model)] + (input.map { [("--input", $0)] } ?? [])
        let outputs = [output.map { ("--output", $0) }, raw.map { ("--raw", $0) }, metricsJSON.map { ("--metrics-json", $0) }]
        try FlagCheck.outputsSpareInputs(outputs.compactMap { $0 }, inputs: inputs)
        try StandardStreams.check(inputs: input.map { [("--input", $0)] } ?? [], outputs: outputs.compactMap { $0 } + (result.json ? [("--json", StandardStreams.dash)] : []))
        if input == nil, raw != nil { throw ValidationError("--raw goes with --input; with images, --save-npy saves the heatmaps") }
        if metricsJSON != nil && method == .guidedBackprop { throw ValidationError("--metrics-json needs a CAM method, not guided-backprop") }
        _ = try parsePercentiles(roadPercentiles)
    }

    /// The faithfulness metrics these options ask for, on the generator's model.
    func makeFaithfulness(_ generator: GradCAMHeatmapGenerator) throws -> Faithfulness? {
        guard metricsJSON != nil else { return nil }
        return Faithfulness(
            executor: generator.executor, output: generator.outputName, kind: outputKind,
            options: FaithfulnessOptions(percentiles: try parsePercentiles(roadPercentiles), seed: seed, curves: true))
    }

    /// The maps the metrics read: in [0, 1] as pytorch-grad-cam scales them, even with `--normalization none`.
    func metricMaps(_ heatmaps: Tensor) throws -> Tensor {
        normalization == .none ? try Faithfulness.unitScaled(heatmaps) : heatmaps
    }

    /// The heatmap generator these options describe.
    func makeGenerator(_ loaded: Model) throws -> GradCAMHeatmapGenerator {
        var options = CAMOptions(
            eigenSmooth: eigenSmooth, augSmooth: augSmooth, normalization: normalization, upsampling: upsampling,
            layerLayout: layerLayout, inputLayout: images.preprocessing.inputLayout)
        if let tokenGrid { options.layerLayout = .tokens(try FlagCheck.tokenGrid(tokenGrid)) }
        let layers = layer.isEmpty && method != .guidedBackprop
            ? [try LayerChoice.layer(nil, model: loaded, size: images.preprocessing.size)] : layer
        return try GradCAMHeatmapGenerator(
            model: loaded, targetLayers: layers, method: method.camMethod ?? .gradCAM, options: options,
            allowNoLayers: method == .guidedBackprop, output: outputName)
    }

    func run() throws {
        let loaded = try loadModel(model)
        let generator = try Console.timed("built the generator") { try makeGenerator(loaded) }
        let labels = try images.labels.map { try FileIO.text(of: $0).split(separator: "\n").map(String.init) }
        let report = GradCAMReport(model: model, method: method.rawValue, generator: generator, labels: labels, json: result.json)
        if [output, raw].contains(StandardStreams.dash) { Console.channel = .data }
        if let input, let output {
            try explainBatch(input: input, output: output, generator: generator, report: report)
        } else {
            try Console.timed("explained the images") { try ImageRun(command: self, generator: generator, report: report).run() }
        }
        try report.finish()
    }

    /// `--input`: heatmaps of a preprocessed batch into `--output` (and `--raw`, `--metrics-json`).
    private func explainBatch(input: String, output: String, generator: GradCAMHeatmapGenerator, report: GradCAMReport) throws {
        let images = try StandardStreams.readNPY(input, flag: "--input")
        guard images.rank == 4 else { throw CommandFailure(description: "--input must be a 4-D batch of images, got shape \(images.shape)") }
        let classes = try parseClasses(count: images.shape[0])

        let heatmaps: Tensor
        let chosen: [Int]
        var camMaps: Tensor?
        switch method {
        case .guidedBackprop:
            chosen = try classes ?? generator.predictedClasses(images)
            heatmaps = try Console.timed("guided backpropagation") { try generator.guidedBackprop(images, targetClasses: chosen) }
        case .guidedGradCAM:
            let (guided, cam) = try Console.timed("guided GradCAM of \(images.shape[0]) sample(s)") { try generator.guidedAndCAM(images, targetClasses: classes) }
            chosen = cam.classes
            camMaps = cam.heatmaps
            if let raw {
                try StandardStreams.writeNPY(cam.rawMaps[0], to: raw)
                report.wrote(raw, "wrote the raw map \(cam.rawMaps[0].dtype)\(cam.rawMaps[0].shape) to \(Self.describe(raw))")
            }
            heatmaps = try generator.guidedGradCAM(guided: guided, heatmaps: cam.heatmaps)
        default:
            let result = try Console.timed("explained \(images.shape[0]) sample(s)") { try generator.explain(images, targetClasses: classes) }
            chosen = result.classes
            if let raw {
                try StandardStreams.writeNPY(result.rawMaps[0], to: raw)
                report.wrote(raw, "wrote the raw map \(result.rawMaps[0].dtype)\(result.rawMaps[0].shape) to \(Self.describe(raw))")
            }
            heatmaps = result.heatmaps
        }
        if result.json {
            // Only the JSON lists each sample's most probable classes: one more forward pass.
            let probabilities = try generator.executor.classProbabilities(images, output: generator.outputName, kind: outputKind)
            for (index, row) in probabilities.enumerated() {
                report.predicted("#\(index)", probabilities: row, count: self.images.topK ?? 3, explained: [chosen[index]])
            }
        }
        try StandardStreams.writeNPY(heatmaps, to: output)
        if let faithfulness = try makeFaithfulness(generator), let metricsJSON {
            let maps = camMaps ?? heatmaps
            let scores = try Console.timed("scored the maps' faithfulness") {
                try faithfulness.evaluate(images, heatmaps: metricMaps(maps), classes: chosen, indices: Array(0..<chosen.count))
            }
            try faithfulness.json(scores, classes: chosen).write(to: URL(fileURLWithPath: metricsJSON))
            report.wrote(metricsJSON, "wrote the faithfulness metrics of \(chosen.count) map(s) to \(metricsJSON)")
        }
        let layers = generator.layers.map { "\($0.request) -> \($0.tensor)" }.joined(separator: ", ")
        Console.say("\(method.rawValue)\(layers.isEmpty ? "" : " at \(layers)"): classes \(chosen.map(String.init).joined(separator: ", "))")
        report.wrote(output, "wrote \(heatmaps.dtype)\(heatmaps.shape) to \(Self.describe(output))")
    }

    /// A path for a message: `-` is standard output.
    static func describe(_ path: String) -> String { path == StandardStreams.dash ? "standard output" : path }

    func parseClasses(count: Int, checkingCount: Bool = true) throws -> [Int]? {
        guard let targetClass else { return nil }
        let values = try targetClass.split(separator: ",", omittingEmptySubsequences: false).map { part -> Int in
            guard let value = Int(part.trimmingCharacters(in: .whitespaces)), value >= 0 else {
                throw ValidationError("--class takes class indices (integers from 0), got '\(targetClass)'")
            }
            return value
        }
        if values.count == 1 { return Array(repeating: values[0], count: count) }
        guard checkingCount else { return values }
        guard values.count == count else { throw ValidationError("--class lists \(values.count) classes for \(count) samples") }
        return values
    }
}

/// The method names the CLI accepts.
enum CAMMethodName: String, CaseIterable, ExpressibleByArgument {
    case gradcam, hirescam, xgradcam, layercam, eigencam, eigengradcam, scorecam
    case gradcamPlusPlus = "gradcam++"
    case gradcamElementwise = "gradcam-elementwise"
    case guidedBackprop = "guided-backprop"
    case guidedGradCAM = "guided-gradcam"

    /// The CAM method, or `nil` for pure guided backpropagation.
    var camMethod: CAMMethod? {
        switch self {
        case .guidedBackprop: nil
        case .guidedGradCAM: .gradCAM
        default: CAMMethod(rawValue: rawValue)
        }
    }
}

extension HeatmapNormalization: ExpressibleByArgument {}
extension MapResize: ExpressibleByArgument {}

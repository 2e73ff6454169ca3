import ArgumentParser
import Foundation
import ShortcutDetect

/// `shortcut-detect gradcam`: heatmaps of a batch of preprocessed images at chosen layers.
struct GradCAMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradcam",
        abstract: "Compute class activation maps for image files or a NumPy batch.",
        discussion: """
            With --image/--images, each image is preprocessed as torchvision does (resize the shorter
            side, centre-crop to the model's input size, or to --size HxW where the model leaves it free,
            normalize) and OUT/<stem>.png gets the heatmap
            drawn over it (OUT/<stem>.npy with --save-npy, OUT/<stem>_panel.png with --panel).
            With --input IN.npy (already preprocessed, [N, C, H, W], or [N, H, W, C] for a channels-last
            model), --output HEAT.npy gets float32
            [N, H, W] heatmaps (guided-backprop and guided-gradcam write [N, H, W, 3]) and --raw the
            first layer's map before ReLU and scaling, [N, h, w].
            Without --layer, the layer `inspect` suggests is explained (standard error names it).
            Layers are read as [N, C, h, w] maps, [N, h, w, C] maps or [N, tokens, C] tokens as the
            graph and the tensor's shape say; --layer-layout overrides.
            Methods: \(CAMMethodName.allCases.map(\.rawValue).joined(separator: ", ")).
            """)

    @Argument(help: "The .onnx model file.")
    var model: String

    @Option(help: ArgumentHelp("Images as a float32 .npy of shape [N, C, H, W] ([N, H, W, C] for a channels-last model), already preprocessed.", valueName: "PATH"))
    var input: String?

    @OptionGroup var images: ImageOptions

    @Option(help: ArgumentHelp("Target layer: module path (layer4, features.29, blocks[-1].norm1), node or tensor name. Repeat to average layers. Default: the layer `inspect` suggests.", valueName: "LAYER"))
    var layer: [String] = []

    @Option(name: .customLong("class"), help: ArgumentHelp("Class to explain: one for all samples, or one per sample (comma-separated). Default: each sample's prediction.", valueName: "C"))
    var targetClass: String?

    @Option(help: ArgumentHelp("CAM method.", valueName: "NAME"))
    var method: CAMMethodName = .gradcam

    @Option(help: ArgumentHelp("The model output to explain, for a model with several heads (default: the first).", valueName: "NAME"))
    var outputName: String?

    @Option(help: ArgumentHelp("With --input: where to write the heatmaps (.npy).", valueName: "PATH"))
    var output: String?

    @Option(help: ArgumentHelp("Where to write the raw layer map (.npy).", valueName: "PATH"))
    var raw: String?

    @Flag(help: "Replace the channel sum by the first principal component (eigen smoothing).")
    var eigenSmooth = false

    @Flag(help: "Average over flipped and rescaled copies of the input (augmentation smoothing).")
    var augSmooth = false

    @Option(help: ArgumentHelp("Heatmap scaling: minmax (pytorch-grad-cam) or none.", valueName: "MODE"))
    var normalization: HeatmapNormalization = .minMax

    @Option(help: ArgumentHelp("Upsampling: bilinear (pytorch-grad-cam), bilinearAlignCorners or nearest (Captum).", valueName: "MODE"))
    var upsampling: MapResize = .bilinear

    @Option(help: ArgumentHelp("Token layout for transformer layers, PREFIX:HxW (e.g. 1:14x14). Default: inferred.", valueName: "SPEC"))
    var tokenGrid: String?

    @Option(help: ArgumentHelp("How the layers hold channels: nchw, nhwc or tokens. Default: from the graph and the shape.", valueName: "LAYOUT"))
    var layerLayout: LayerLayout?

    @Option(name: .customLong("metrics-json"), help: ArgumentHelp("Also write the maps' faithfulness metrics (pytorch-grad-cam's ROAD, input x map; deletion and insertion AUC) per sample.", valueName: "PATH"))
    var metricsJSON: String?

    @Option(name: .customLong("road-percentiles"), help: ArgumentHelp("The percentiles ROAD removes pixels at.", valueName: "P,P,..."))
    var roadPercentiles: String = "20,40,60,80"

    @Option(help: ArgumentHelp("Seed of ROAD's imputation noise.", valueName: "S"))
    var seed: UInt32 = 0

    @Option(name: .customLong("output-kind"), help: ArgumentHelp("How to read the model's output: logits (softmaxed) or probabilities (used as is). Default: probabilities when the graph ends in Softmax, else each row decides.", valueName: "KIND"))
    var outputKind: OutputKind?

    @OptionGroup var resources: ResourceOptions

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
        let loaded = try Model(contentsOf: URL(fileURLWithPath: model))
        let generator = try makeGenerator(loaded)
        guard let input, let output else {
            try ImageRun(command: self, generator: generator).run()
            return
        }
        let images = try Tensor(npyAt: URL(fileURLWithPath: input))
        guard images.rank == 4 else { throw ValidationError("--input must be a 4-D batch of images, got \(images.shape)") }
        let classes = try parseClasses(count: images.shape[0])

        let heatmaps: Tensor
        let chosen: [Int]
        var camMaps: Tensor?
        switch method {
        case .guidedBackprop:
            chosen = try classes ?? generator.predictedClasses(images)
            heatmaps = try generator.guidedBackprop(images, targetClasses: chosen)
        case .guidedGradCAM:
            let (guided, cam) = try generator.guidedAndCAM(images, targetClasses: classes)
            chosen = cam.classes
            camMaps = cam.heatmaps
            if let raw { try cam.rawMaps[0].writeNPY(to: URL(fileURLWithPath: raw)) }
            heatmaps = try generator.guidedGradCAM(guided: guided, heatmaps: cam.heatmaps)
        default:
            let result = try generator.explain(images, targetClasses: classes)
            chosen = result.classes
            if let raw { try result.rawMaps[0].writeNPY(to: URL(fileURLWithPath: raw)) }
            heatmaps = result.heatmaps
        }
        try heatmaps.writeNPY(to: URL(fileURLWithPath: output))
        if let faithfulness = try makeFaithfulness(generator), let metricsJSON {
            let maps = camMaps ?? heatmaps
            let scores = try faithfulness.evaluate(images, heatmaps: metricMaps(maps), classes: chosen, indices: Array(0..<chosen.count))
            try faithfulness.json(scores, classes: chosen).write(to: URL(fileURLWithPath: metricsJSON))
            print("wrote the faithfulness metrics of \(chosen.count) map(s) to \(metricsJSON)")
        }
        let layers = generator.layers.map { "\($0.request) -> \($0.tensor)" }.joined(separator: ", ")
        print("\(method.rawValue)\(layers.isEmpty ? "" : " at \(layers)"): classes \(chosen.map(String.init).joined(separator: ", "))")
        print("wrote \(heatmaps.dtype)\(heatmaps.shape) to \(output)")
    }

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

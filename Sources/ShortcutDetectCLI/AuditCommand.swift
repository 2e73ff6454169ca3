import ArgumentParser
import Foundation
import ShortcutDetect

/// `shortcut-detect audit`: heatmaps over a dataset, compared across groups and scored on a region.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Audit a dataset: does the model look at a shortcut region, and differently per group?",
        discussion: """
            groups.csv has a header with 'file' and 'group' columns and optionally 'label'; files are \
            relative to --images. Before the heatmaps, the embedding detectors (as `detect`) read the pooled \
            output of --embed-layer (default --layer) from the same forward pass. REPORT gets summary.json, \
            samples.csv, group mean and divergence maps, the comparison figure, the most and least \
            region-reliant overlays per group, and report.html. --json prints, instead of the summary \
            sentence, one JSON object: report (the folder), images, shard, and summary (what summary.json holds).

            --shard K/N audits every N-th batch starting at the K-th; `shortcut-detect merge` combines the \
            shard reports into exactly the report one run with the same --batch-size writes.

            Images that already have the model's input size are used as they are (--resize N applies to \
            all); a --mask of the images' size is in image coordinates, one of the input size (on images of \
            another size) in model coordinates; --mask-space says so explicitly. --counterfactual fills the \
            region and predicts again; the faithfulness metrics (pytorch-grad-cam's ROAD and input x map) run \
            on up to --faithfulness images; without a region, spectral relevance analysis clusters the \
            heatmaps (--spray runs it with one too).
            """)

    @Argument(help: "The .onnx model file.")
    var model: String

    @Option(help: ArgumentHelp("The folder the images in groups.csv are relative to.", valueName: "DIR"))
    var images: String

    @Option(help: ArgumentHelp("CSV with file,group[,label] columns.", valueName: "CSV"))
    var groups: String

    @Option(help: ArgumentHelp("Target layer (module path, node or tensor name). Default: the layer `inspect` suggests.", valueName: "LAYER"))
    var layer: String?

    @Option(help: ArgumentHelp("How the layer holds channels (default: from the graph and the shape).", valueName: "LAYOUT"))
    var layerLayout: LayerLayout?

    @Option(help: ArgumentHelp("Layer whose pooled output the embedding detectors read (default: --layer).", valueName: "LAYER"))
    var embedLayer: String?

    @Option(help: ArgumentHelp("The model output to explain (default: the first).", valueName: "NAME"))
    var outputName: String?

    @Option(help: ArgumentHelp("The shortcut region as a PNG (bright = inside), of the images' size or the model's input size.", valueName: "PNG"))
    var mask: String?

    @Option(name: .customLong("mask-rect"), help: ArgumentHelp("The shortcut region as X,Y,W,H in model-input pixels (image pixels with --mask-space image); repeatable.", valueName: "X,Y,W,H"))
    var maskRect: [String] = []

    @Option(name: .customLong("mask-space"), help: ArgumentHelp("The region's coordinates: image coordinates go through the images' resize and crop, model coordinates are used as they are (default: from the mask's size).", valueName: "SPACE"))
    var maskSpace: MaskSpace?

    @Option(help: ArgumentHelp("Fill the region in each input and predict again: the counterfactual test.", valueName: "FILL"))
    var counterfactual: CounterfactualFill?

    @Option(help: ArgumentHelp("Faithfulness metrics (ROAD, input x map) on at most N images spread over the audit; 0 for none, all for every image.", valueName: "N"))
    var faithfulness: String = "64"

    @Option(name: .customLong("road-percentiles"), help: ArgumentHelp("The percentiles ROAD removes pixels at.", valueName: "P,P,..."))
    var roadPercentiles: String = "20,40,60,80"

    @Option(help: ArgumentHelp("Seed of the counterfactual noise and ROAD's imputation noise.", valueName: "S"))
    var seed: UInt32 = 0

    @Flag(help: "Cluster the heatmaps (spectral relevance analysis) even with a region; without one it always runs.")
    var spray = false

    @Option(name: .customLong("output-kind"), help: ArgumentHelp("How to read the model's output: logits are softmaxed, probabilities used as they are (default: probabilities when the graph ends in Softmax, else decided per row).", valueName: "KIND"))
    var outputKind: OutputKind?

    @OptionGroup var preprocessing: PreprocessingOptions

    @Option(help: ArgumentHelp("The CAM method.", valueName: "NAME"))
    var method: CAMMethodName = .gradcam

    @Option(help: ArgumentHelp("Class to explain: predicted, label, or a class index.", valueName: "T"))
    var target: String = "predicted"

    @Option(help: ArgumentHelp("normalized (per-image min-max, as pytorch-grad-cam) or raw (comparable across images).", valueName: "KIND"))
    var maps: String = "normalized"

    @Option(help: ArgumentHelp("In-region share of attention above which a sample counts as region-reliant.", valueName: "F"))
    var threshold: Double = 0.1

    @Option(help: ArgumentHelp("Audit one slice, K/N (1-based).", valueName: "K/N"))
    var shard: String?

    @Option(help: ArgumentHelp("Images per forward/backward pass.", valueName: "N"))
    var batchSize: Int = 8

    @Option(help: ArgumentHelp("The report folder.", valueName: "REPORT"))
    var out: String

    @Flag(help: "Replace the report already in REPORT (it stays until the new one is complete).")
    var overwrite = false

    @Flag(help: "Stop at the first image that cannot be used instead of listing it in samples.csv and going on.")
    var strict = false

    @OptionGroup var result: JSONOption

    @OptionGroup var resources: ResourceOptions

    @OptionGroup var console: ConsoleOptions

    func validate() throws {
        try FlagCheck.number(threshold, "--threshold", in: 0...1)
        try FlagCheck.count(batchSize, "--batch-size")
        _ = try parseShard()
        _ = try parseRectangles()
        do { _ = try AuditTarget(target) } catch { throw ValidationError("\(error)") }
        if mask != nil && !maskRect.isEmpty { throw ValidationError("give --mask or --mask-rect, not both") }
        guard maps == "normalized" || maps == "raw" else { throw ValidationError("--maps must be normalized or raw") }
        guard method.camMethod != nil, method != .guidedGradCAM else {
            throw ValidationError("audits need a CAM method, not \(method.rawValue)")
        }
        if counterfactual != nil && mask == nil && maskRect.isEmpty {
            throw ValidationError("--counterfactual fills the shortcut region: give --mask or --mask-rect")
        }
        _ = try faithfulnessBudget(total: 1)
        _ = try parsePercentiles(roadPercentiles)
    }

    func run() throws {
        let folder = URL(fileURLWithPath: images)
        let input = try AuditInput(csv: URL(fileURLWithPath: groups), folder: folder)
        guard input.count > 0 else { throw ValidationError("\(groups) lists no images") }
        let (part, parts) = try parseShard()
        // Checked before the work, so a run never ends in a refusal to write.
        let output = try OutputFolder(URL(fileURLWithPath: out), overwrite: overwrite)

        let loaded = try loadModel(model)
        let layer = try LayerChoice.layer(self.layer, model: loaded, size: preprocessing.size)
        let options = CAMOptions(
            normalization: maps == "raw" ? .none : .minMax, layerLayout: layerLayout, inputLayout: preprocessing.inputLayout)
        let generator = try GradCAMHeatmapGenerator(
            model: loaded, targetLayer: layer, method: method.camMethod ?? .gradCAM, options: options, output: outputName)
        let embedding = try LayerResolver(model: loaded).resolve(embedLayer ?? layer)
        let prep = try preprocessing.make(for: generator.executor)
        guard let crop = prep.crop else { throw ValidationError("the input size is unknown; give --size") }
        // The region's space is settled against the first readable image of the whole audit, so every shard settles it alike.
        let first = try input.firstReadable { url in
            let image = try prep.load(url)
            return (image.width, image.height)
        }
        let region = try makeMask(preprocessing: prep, imageSize: first, height: crop.height, width: crop.width)
        let budget = try faithfulnessBudget(total: input.count)
        var config = AuditConfig(
            model: (model as NSString).lastPathComponent, layer: layer, tensor: generator.layers[0].tensor,
            method: method.rawValue, maps: maps, target: try AuditTarget(target).description,
            preprocessing: prep.summary, mask: region?.description, maskArea: region?.mask.area,
            threshold: threshold, iouFraction: 0.5, height: crop.height, width: crop.width, total: input.count,
            batchSize: batchSize, embedLayer: embedLayer ?? layer, embedTensor: embedding.tensor)
        config.outputKind = (outputKind ?? generator.executor.outputKind(of: generator.outputName)).rawValue
        config.transform = AuditConfig.Transform(prep)
        if let region {
            config.maskSpace = region.space.rawValue
            config.maskReason = region.reason
            config.maskPixels = region.mask.packed
            if region.space == MaskSpace.image { config.maskImageSize = [first.width, first.height] }
        }
        config.counterfactual = counterfactual?.rawValue
        config.seed = seed
        if budget > 0 {
            config.faithfulness = FaithfulnessOptions(percentiles: try parsePercentiles(roadPercentiles), seed: seed)
            config.faithfulnessStride = (input.count + budget - 1) / budget
        }
        config.spray = spray ? true : nil
        var auditor = Auditor(generator: generator, preprocessing: prep, mask: region?.mask, target: try AuditTarget(target), config: config)
        auditor.strict = strict
        let progress = Progress(total: parts > 1 ? (input.count + parts - 1) / parts : input.count)
        try auditor.run(input, part: part, of: parts, into: output) { progress.advance(by: $0) }
        progress.finish()
        reportPasses(generator.executor)
        let report = try AuditReport.write(into: output)
        try output.commit(kind: AuditRunConfiguration.kind, producer: producer, configuration: AuditRunConfiguration(config, shard: parts > 1 ? shard : nil))
        let skipped = report.skipped > 0 ? " (\(report.skipped) row(s) skipped, listed in samples.csv)" : ""
        try AuditOutput.finish(
            report, in: output.destination, json: result.json, images: report.count, shard: parts > 1 ? "\(part)/\(parts)" : nil,
            done: "wrote the report for \(report.count) image(s)\(skipped)\(parts > 1 ? " (shard \(part)/\(parts))" : "") to \(output.destination.path)")
    }

    /// How many images the faithfulness metrics may take.
    private func faithfulnessBudget(total: Int) throws -> Int {
        if faithfulness == "all" { return total }
        guard let n = Int(faithfulness), n >= 0 else { throw ValidationError("--faithfulness takes a number of images or 'all', got '\(faithfulness)'") }
        return min(n, total)
    }

    private func parseShard() throws -> (Int, Int) {
        guard let shard else { return (1, 1) }
        let parts = shard.split(separator: "/").compactMap { Int($0) }
        guard parts.count == 2, parts[1] >= 1, (1...parts[1]).contains(parts[0]) else {
            throw ValidationError("--shard expects K/N with 1 <= K <= N, got '\(shard)'")
        }
        return (parts[0], parts[1])
    }

    private func makeMask(preprocessing: Preprocessing, imageSize: (width: Int, height: Int), height: Int, width: Int) throws
        -> (mask: RegionMask, space: MaskSpace, reason: String, description: String)?
    {
        if let mask {
            let url = URL(fileURLWithPath: mask)
            let name = url.lastPathComponent
            let resolved = try RegionMask.resolve(
                preprocessing.load(url), name: name, space: maskSpace, imageSize: imageSize, preprocessing: preprocessing,
                inputHeight: height, inputWidth: width)
            return (resolved.mask, resolved.space, resolved.reason, name)
        }
        guard !maskRect.isEmpty else { return nil }
        // Rectangles are in model-input pixels unless --mask-space image puts them on the images.
        let space = maskSpace ?? .model
        let canvas: (width: Int, height: Int) = space == .image ? imageSize : (width, height)
        let drawn = try RegionMask(rectangles: parseRectangles(), height: canvas.height, width: canvas.width)
        let resolved = try RegionMask.resolve(
            drawn.picture, name: "--mask-rect", space: space, imageSize: imageSize, preprocessing: preprocessing, inputHeight: height,
            inputWidth: width)
        return (resolved.mask, resolved.space, resolved.reason, "rectangles " + maskRect.joined(separator: " "))
    }

    private func parseRectangles() throws -> [(x: Int, y: Int, width: Int, height: Int)] {
        try maskRect.map { spec in
            let v = spec.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard v.count == 4, let x = v[0], let y = v[1], let width = v[2], let height = v[3], x >= 0, y >= 0, width > 0, height > 0
            else { throw ValidationError("--mask-rect expects X,Y,W,H with X, Y from 0 and W, H from 1, got '\(spec)'") }
            return (x, y, width, height)
        }
    }
}

/// `shortcut-detect merge`: shard reports into the report one run would have written.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge", abstract: "Combine the reports of audit shards into one report.",
        discussion: "--json prints, instead of the summary sentence, one JSON object as `audit --json` does.")

    @Argument(help: "Shard report folders.")
    var reports: [String]

    @Option(help: ArgumentHelp("The merged report folder.", valueName: "REPORT"))
    var out: String

    @Flag(help: "Replace the report already in REPORT (it stays until the new one is complete).")
    var overwrite = false

    @OptionGroup var result: JSONOption

    @OptionGroup var resources: ResourceOptions

    @OptionGroup var console: ConsoleOptions

    func validate() throws {
        try FlagCheck.outputsSpareInputs([("--out", out)], inputs: reports.map { ("report", $0) })
    }

    func run() throws {
        let output = try OutputFolder(URL(fileURLWithPath: out), overwrite: overwrite)
        let merged = try AuditReport.merge(reports.map { URL(fileURLWithPath: $0) }, into: output)
        if merged.records + merged.issues != merged.config.total {
            Console.note("note: the shards hold \(merged.records + merged.issues) of the audit's \(merged.config.total) images")
        }
        let report = try AuditReport.write(into: output)
        try output.commit(kind: AuditRunConfiguration.kind, producer: producer, configuration: AuditRunConfiguration(merged.config, shard: nil))
        try AuditOutput.finish(
            report, in: output.destination, json: result.json, images: merged.records, shard: nil,
            done: "merged \(reports.count) report(s), \(merged.records) image(s), into \(output.destination.path)")
    }
}

/// `shortcut-detect embed`: one feature vector per image, for embedding-based shortcut detectors.
struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Write a layer's features per image (global-average-pooled when spatial) as .npy.",
        discussion: "Writes OUT (float32 [N, C]) and, beside it, OUT with .files.txt: the image order, one per line. With --out - the embeddings go to standard output and the order (the file names sorted) is not written.")

    @Argument(help: "The .onnx model file.")
    var model: String

    @Option(help: ArgumentHelp("A folder of PNG and JPEG images.", valueName: "DIR"))
    var images: String

    @Option(help: ArgumentHelp("Layer (module path, node or tensor name). Default: the layer `inspect` suggests.", valueName: "LAYER"))
    var layer: String?

    @Option(help: ArgumentHelp("How the layer holds channels (default: from the graph and the shape).", valueName: "LAYOUT"))
    var layerLayout: LayerLayout?

    @OptionGroup var preprocessing: PreprocessingOptions

    @Option(help: ArgumentHelp("Images per forward pass.", valueName: "N"))
    var batchSize: Int = 16

    @Option(help: ArgumentHelp("Where to write the embeddings (.npy); - for standard output.", valueName: "PATH"))
    var out: String

    @OptionGroup var resources: ResourceOptions

    @OptionGroup var console: ConsoleOptions

    func validate() throws {
        try FlagCheck.count(batchSize, "--batch-size")
        try FlagCheck.outputsSpareInputs([("--out", out)], inputs: [("model", model)])
        try StandardStreams.check(inputs: [], outputs: [("--out", out)])
    }

    func run() throws {
        if out == StandardStreams.dash { Console.channel = .data }
        let loaded = try loadModel(model)
        let executor = try Console.timed("built the executor") { try Executor(model: loaded) }
        let prep = try preprocessing.make(for: executor)
        let extractor = try EmbeddingExtractor(
            executor: executor, layer: LayerChoice.layer(layer, model: loaded, size: preprocessing.size), inputLayout: prep.layout,
            layerLayout: layerLayout)
        let folder = URL(fileURLWithPath: images)
        let names: [String]
        do { names = try FileIO.contentsOfFolder(folder) } catch let error as FileError {
            throw ValidationError("cannot list --images \(images): \(error.reason)")
        }
        let files = names.filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
        guard !files.isEmpty else { throw ValidationError("no .png, .jpg or .jpeg files in \(images)") }
        // Rows go to the file as they come (after its header, written once the width is known),
        // while the next batch is read and decoded on another thread.
        let destination = URL(fileURLWithPath: out)
        // Standard output takes the whole array at the end (its header needs the width first).
        let output = out == StandardStreams.dash ? nil : try OutputFile(destination)
        var rows: [Float] = []
        let size = max(batchSize, 1)
        var next = 0
        let reader = Prefetch<(count: Int, batch: Tensor)>(name: "shortcut-detect embed: decode") {
            guard next < files.count else { return nil }
            let chunk = Array(files[next..<min(next + size, files.count)])
            next += chunk.count
            return (chunk.count, try prep.batch(chunk.map { folder.appendingPathComponent($0) }).tensor)
        }
        defer { reader.cancel() }
        var width: Int?
        let progress = Progress(total: files.count)
        while let (count, batch) = try reader.next() {
            let pooled = try extractor.embeddings(batch)
            if width == nil {
                width = pooled.count / count
                try output?.append(Tensor.npyHeader(dtype: .float32, shape: [files.count, pooled.count / count]))
            }
            if let output { try pooled.withUnsafeBytes { try output.append(raw: $0) } } else { rows += pooled }
            progress.advance(by: count)
        }
        progress.finish()
        reportPasses(executor)
        guard let output else {
            try StandardStreams.writeNPY(Tensor(shape: [files.count, width ?? 0], scalars: rows), to: out)
            return Console.say("wrote \(files.count) x \(width ?? 0) embeddings to standard output")
        }
        let list = try OutputFile(destination.deletingPathExtension().appendingPathExtension("files.txt"))
        try list.append(Data((files.joined(separator: "\n") + "\n").utf8))
        try list.commit()
        try output.commit()
        Console.say("wrote \(files.count) x \(width ?? 0) embeddings to \(out) and the file order to \(list.destination.path)")
    }
}

extension MaskSpace: ExpressibleByArgument {}
extension CounterfactualFill: ExpressibleByArgument {}
extension OutputKind: ExpressibleByArgument {}

/// Percentiles from `20,40,60,80`.
func parsePercentiles(_ text: String) throws -> [Int] {
    let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ $0.map { (1...99).contains($0) } ?? false }) else {
        throw ValidationError("--road-percentiles takes comma-separated percentiles between 1 and 99, got '\(text)'")
    }
    return values.compactMap { $0 }
}

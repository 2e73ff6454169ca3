import ArgumentParser
import Foundation
import ShortcutDetect

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Options for explaining image files.
struct ImageOptions: ParsableArguments {
    @Option(help: ArgumentHelp("An image file (PNG or JPEG); repeatable.", valueName: "PATH"))
    var image: [String] = []

    @Option(help: ArgumentHelp("A folder of PNG and JPEG images.", valueName: "DIR"))
    var images: String?

    @Option(help: ArgumentHelp("Folder for the overlays (and heatmaps and panels).", valueName: "DIR"))
    var out: String?

    @Option(name: .customLong("top-k"), help: ArgumentHelp("Explain each of the K most probable classes.", valueName: "K"))
    var topK: Int?

    @Option(help: ArgumentHelp("Class names, one per line, for printing predictions.", valueName: "PATH"))
    var labels: String?

    @OptionGroup var preprocessing: PreprocessingOptions

    @Option(help: ArgumentHelp("Heatmap weight in the overlay.", valueName: "A"))
    var alpha: Float = 0.5

    @Option(help: ArgumentHelp("Overlay colormap.", valueName: "NAME"))
    var colormap: Colormap = .jet

    @Flag(help: "Also save each heatmap as OUT/<stem>.npy.")
    var saveNpy = false

    @Flag(help: "Also save a three-panel figure (original | heatmap | overlay) as OUT/<stem>_panel.png.")
    var panel = false

    @Option(help: ArgumentHelp("Images per forward/backward pass.", valueName: "N"))
    var batchSize: Int = 8

    @Option(help: ArgumentHelp("zlib level of the PNGs, 0 (none) to 9 (smallest); 1 writes fastest, for files about 25% larger than 6.", valueName: "L"))
    var compression: Int32 = PNG.defaultLevel

    @Flag(help: "Replace the results already in --out (they stay until the new ones are complete).")
    var overwrite = false

    func validate() throws {
        try FlagCheck.number(alpha, "--alpha", in: 0...1)
        try FlagCheck.count(batchSize, "--batch-size")
        if let topK { try FlagCheck.count(topK, "--top-k") }
        guard (0...9).contains(compression) else { throw ValidationError("--compression must be 0 to 9, got \(compression)") }
    }
}

extension Colormap: ExpressibleByArgument {}

/// How images are turned into model inputs; shared by gradcam, audit and embed.
struct PreprocessingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Normalization preset: imagenet, half or none.", valueName: "NAME"))
    var preprocess: String = "imagenet"

    @Option(help: ArgumentHelp("Custom normalization mean, three comma-separated values.", valueName: "R,G,B"))
    var mean: String?

    @Option(help: ArgumentHelp("Custom normalization std, three comma-separated values.", valueName: "R,G,B"))
    var std: String?

    @Option(help: ArgumentHelp("Shorter side after resizing, applied to every image (default: crop / 0.875, e.g. 256 for 224, for images not already of the model's input size, which are used as they are).", valueName: "N"))
    var resize: Int?

    @Option(help: ArgumentHelp("Input size, N or HxW, where the model leaves height or width free (default: the size it fixes).", valueName: "HxW"))
    var size: ImageSize?

    @Option(help: ArgumentHelp("How the model takes images (default: from its declared input shape).", valueName: "LAYOUT"))
    var inputLayout: ImageLayout?

    func validate() throws {
        for (flag, preprocessing) in [
            ("--resize \(resize ?? 0)", Preprocessing(resize: resize, crop: nil)),
            ("--size \(size.map { "\($0.height)x\($0.width)" } ?? "")", Preprocessing(resize: nil, crop: size.map { ($0.height, $0.width) })),
        ] {
            do { try preprocessing.validate() } catch { throw ValidationError("\(flag): \(error)") }
        }
        if mean != nil || std != nil {
            guard let mean = mean.flatMap(triple), let std = std.flatMap(triple),
                (mean + std).allSatisfy(\.isFinite), !std.contains(0)
            else { throw ValidationError("--mean and --std each need three finite comma-separated numbers, std not 0") }
        }
    }

    /// torchvision's evaluation transform for this model's input size.
    func make(for executor: Executor) throws -> Preprocessing {
        var normalization = Preprocessing.Normalization.preset(preprocess)
        if mean != nil || std != nil {
            guard let mean = mean.flatMap(triple), let std = std.flatMap(triple) else {
                throw ValidationError("--mean and --std each need three comma-separated numbers")
            }
            normalization = Preprocessing.Normalization(mean: mean, std: std)
        }
        guard let normalization else { throw ValidationError("--preprocess must be imagenet, half or none, got '\(preprocess)'") }
        let size: (height: Int, width: Int)
        let layout = inputLayout ?? executor.imageLayout
        do { size = try executor.imageSize(requested: self.size.map { ($0.height, $0.width) }, layout: layout) } catch {
            throw ValidationError("\(error)\(self.size == nil ? "; give --size HxW" : "")")
        }
        var result = Preprocessing.evaluation(height: size.height, width: size.width, normalization: normalization)
        result.layout = layout
        if let resize {
            // An explicit resize applies to every image, those of the input size included.
            result.resize = resize
            result.inputSizedAsIs = false
        }
        try result.validate()
        return result
    }

    private func triple(_ text: String) -> [Float]? {
        let values = text.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        return values.count == 3 ? values : nil
    }
}

/// An image size on the command line: `N` for a square, or `HxW`.
struct ImageSize: ExpressibleByArgument, Equatable {
    let height: Int
    let width: Int

    init?(argument: String) {
        let parts = argument.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        let values = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == parts.count, values.count == 1 || values.count == 2, values.allSatisfy({ $0 > 0 }) else { return nil }
        height = values[0]
        width = values[values.count - 1]
    }
}

/// Explains image files: preprocess like torchvision, compute heatmaps in batches, write pictures.
///
/// Three stages overlap, each one batch from the next: reading and preprocessing the images
/// (a thread of its own), the model (one forward and one backward pass per batch and class rank;
/// the predictions come from the same pass), and the pictures (overlays, panels and heatmaps,
/// encoded in parallel on a thread of their own). The folder appears whole when all are written.
struct ImageRun {
    let command: GradCAMCommand
    let generator: GradCAMHeatmapGenerator
    let report: GradCAMReport
    var options: ImageOptions { command.images }

    /// One batch through the model: what the pictures stage writes.
    struct Explained {
        /// Position of the batch's first image among all.
        let start: Int
        let files: [URL]
        let images: [RGBImage]
        /// Per class rank: the file-name suffix, the pictures (overlays or guided pictures) as
        /// heatmap values (`[N, H, W]`, `nil` for guided backpropagation alone) or images.
        var ranks: [(suffix: String, maps: [Float]?, guided: [RGBImage]?)] = []
    }

    func run() throws {
        let files = try imageFiles()
        guard let outPath = options.out else { return }
        let preprocessing = try options.preprocessing.make(for: generator.executor)
        let output = try OutputFolder(URL(fileURLWithPath: outPath), overwrite: options.overwrite)
        let progress = Progress(total: files.count)
        let faithfulness = try command.makeFaithfulness(generator)
        var scores: [FaithfulnessScores] = []
        var scoredClasses: [Int] = []
        let size = max(options.batchSize, 1)
        var next = 0
        let reader = Prefetch<(files: [URL], prepared: [PreparedImage])>(name: "shortcut-detect gradcam: decode") {
            guard next < files.count else { return nil }
            let chunk = Array(files[next..<min(next + size, files.count)])
            next += chunk.count
            return (chunk, try preprocessing.prepareEach(chunk).map { try $0.get() })
        }
        defer { reader.cancel() }
        let writer = Drain<Explained>(name: "shortcut-detect gradcam: pictures") { try write($0, into: output) }
        do {
            var start = 0
            while let (chunk, prepared) = try reader.next() {
                let batch = try Preprocessing.stack(prepared.map(\.tensor), files: chunk)
                var explained = Explained(start: start, files: chunk, images: prepared.map(\.image))
                let (probabilities, first) = try explainFirst(batch, count: chunk.count)
                let ranks = options.topK.map { max($0, 1) } ?? 1
                // Rank 1 is the pass that gave the predictions; further ranks need their own.
                let classesByRank = (0..<ranks).map { rank in
                    first.classes.indices.map { n in
                        options.topK == nil ? first.classes[n] : ClassProbabilities.ranked(probabilities[n])[min(rank, probabilities[n].count - 1)]
                    }
                }
                progress.clear()
                for (index, url) in chunk.enumerated() {
                    report.predicted(
                        url.lastPathComponent, probabilities: probabilities[index], count: options.topK ?? 3,
                        explained: classesByRank.map { $0[index] })
                }
                for (rank, classes) in classesByRank.enumerated() {
                    let pass = rank == 0 ? first : try explain(batch, classes: classes)
                    explained.ranks.append((options.topK == nil ? "" : "_top\(rank + 1)", try pass.maps?.scalars(as: Float.self), pass.guided))
                    // The metrics score each image's first explained class.
                    if rank == 0, let faithfulness, let maps = pass.maps {
                        scores += try faithfulness.evaluate(
                            batch, heatmaps: command.metricMaps(maps), classes: classes, indices: Array(start..<start + chunk.count),
                            baseline: probabilities)
                        scoredClasses += classes
                    }
                }
                try writer.submit(explained)
                start += chunk.count
                progress.advance(by: chunk.count)
            }
            try writer.finish()
        } catch {
            writer.cancel()
            throw error
        }
        progress.finish()
        try output.commit(kind: "gradcam", producer: producer, configuration: configuration(preprocessing, files: files))
        Console.say("wrote \(files.count) overlay(s) to \(output.destination.path)")
        if let faithfulness, let path = command.metricsJSON {
            try faithfulness.json(scores, classes: scoredClasses, files: files.map(\.lastPathComponent)).write(to: URL(fileURLWithPath: path))
            report.wrote(path, "wrote the faithfulness metrics of \(scores.count) map(s) to \(path)")
        }
        reportPasses(generator.executor)
    }

    /// One batch's maps for some classes: CAM heatmaps, guided pictures, or both.
    struct Pass {
        let classes: [Int]
        let logits: Tensor
        var maps: Tensor?
        var guided: [RGBImage]?
    }

    /// The first pass of a batch: the classes asked for (`--class`), or each prediction, explained
    /// in the pass that also gives the probabilities. With `--top-k`, the ranking is read from that
    /// pass; if its first class differs from the predicted one (a tie that softmax rounding broke
    /// differently), rank 1 runs again with the ranked classes.
    private func explainFirst(_ batch: Tensor, count: Int) throws -> (probabilities: [[Double]], pass: Pass) {
        let requested = try command.parseClasses(count: count)
        var pass = try explain(batch, classes: requested)
        let probabilities = ClassProbabilities.rows(
            try pass.logits.doubles(), width: pass.logits.shape.last ?? 1,
            kind: command.outputKind ?? generator.executor.outputKind(of: generator.outputName))
        if requested == nil {
            let top = probabilities.map { ClassProbabilities.ranked($0)[0] }
            if top != pass.classes { pass = try explain(batch, classes: top) }
        }
        return (probabilities, pass)
    }

    /// Maps for `classes` (each sample's prediction when `nil`) in one forward and reverse pass
    /// (guided GradCAM included where it can share its pass, see ``GradCAMHeatmapGenerator/guidedAndCAM(_:targetClasses:)``).
    private func explain(_ batch: Tensor, classes: [Int]?) throws -> Pass {
        switch command.method {
        case .guidedBackprop:
            let result = try generator.executor.gradients(
                [generator.executor.inputs[0].name: batch], of: .logit(classes: classes), output: generator.outputName,
                wrt: [generator.executor.inputs[0].name], guided: true)
            guard let gradient = result.gradients[generator.executor.inputs[0].name] else { throw ValidationError("no input gradient") }
            let guided = generator.inputLayout == .nhwc ? gradient : try gradient.transposed([0, 2, 3, 1])
            let logits = result.output
            let chosen = try classes ?? ClassProbabilities.argmax(logits.doubles(), width: logits.shape[1])
            return Pass(classes: chosen, logits: logits, maps: nil, guided: try pictures(guided))
        case .guidedGradCAM:
            let (guided, cam) = try generator.guidedAndCAM(batch, targetClasses: classes)
            let product = try generator.guidedGradCAM(guided: guided, heatmaps: cam.heatmaps)
            return Pass(classes: cam.classes, logits: cam.logits, maps: cam.heatmaps, guided: try pictures(product))
        default:
            let cam = try generator.explain(batch, targetClasses: classes)
            return Pass(classes: cam.classes, logits: cam.logits, maps: cam.heatmaps, guided: nil)
        }
    }

    /// Guided backpropagation `[N, H, W, 3]` as pictures.
    private func pictures(_ guided: Tensor) throws -> [RGBImage] {
        try (0..<guided.shape[0]).map { try Overlay.deprocess(guided.sliced(axis: 0, $0..<$0 + 1).reshaped(Array(guided.shape.dropFirst()))) }
    }

    /// Writes one batch's pictures (in parallel) into the output folder.
    private func write(_ batch: Explained, into output: OutputFolder) throws {
        let (height, width) = (batch.images.first?.height ?? 0, batch.images.first?.width ?? 0)
        let size = height * width
        let results = ConcurrentResults<[String]>(count: batch.files.count)
        DispatchQueue.concurrentPerform(iterations: batch.files.count) { index in
            results.set(index) {
                let image = batch.images[index]
                var written: [String] = []
                for rank in batch.ranks {
                    let stem = batch.files[index].deletingPathExtension().lastPathComponent + rank.suffix
                    let values = rank.maps.map { $0[index * size..<(index + 1) * size] }
                    let picture = try rank.guided?[index]
                        ?? Overlay.overlay(image: image, values: values ?? [], alpha: options.alpha, colormap: options.colormap)
                    try output.write(png(picture), to: stem + ".png")
                    written.append(stem + ".png")
                    guard let values else { continue }
                    let map = try Tensor(shape: [height, width], scalars: Array(values))
                    if options.saveNpy {
                        try output.write(map.npyData(), to: stem + ".npy")
                        written.append(stem + ".npy")
                    }
                    if options.panel {
                        let figure = try Panel.comparison(image: image, heatmap: map, alpha: options.alpha, colormap: options.colormap)
                        try output.write(png(figure), to: stem + "_panel.png")
                        written.append(stem + "_panel.png")
                    }
                }
                return written.map { output.destination.appendingPathComponent($0).path }
            }
        }
        for (index, files) in try results.values().enumerated() { report.wrote(image: batch.start + index, files: files) }
    }

    private func png(_ image: RGBImage) throws -> Data {
        try PNG.encode(width: image.width, height: image.height, channels: 3, pixels: image.pixels, level: options.compression)
    }

    /// What the manifest records about the run.
    private func configuration(_ preprocessing: Preprocessing, files: [URL]) -> GradCAMRunConfiguration {
        GradCAMRunConfiguration(
            model: (command.model as NSString).lastPathComponent, layers: generator.layers.map(\.request),
            tensors: generator.layers.map(\.tensor), method: command.method.rawValue, output: generator.outputName,
            classes: command.targetClass, topK: options.topK, preprocessing: preprocessing.summary, alpha: options.alpha,
            colormap: options.colormap.rawValue, compression: options.compression, images: files.count)
    }

    private func imageFiles() throws -> [URL] {
        if let folder = options.images {
            let url = URL(fileURLWithPath: folder)
            let names: [String]
            do { names = try FileIO.contentsOfFolder(url) } catch let error as FileError {
                throw ValidationError("cannot list --images \(folder): \(error.reason)")
            }
            let files = names.filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
            guard !files.isEmpty else { throw ValidationError("no .png, .jpg or .jpeg files in \(folder)") }
            return files.map { url.appendingPathComponent($0) }
        }
        return options.image.map { URL(fileURLWithPath: $0) }
    }
}

/// What a `gradcam --out` folder's manifest records about the run.
struct GradCAMRunConfiguration: Codable {
    var model: String
    var layers: [String]
    var tensors: [String]
    var method: String
    var output: String
    var classes: String?
    var topK: Int?
    var preprocessing: String
    var alpha: Float
    var colormap: String
    var compression: Int32
    var images: Int
}

/// A progress bar with an estimate of the time left, drawn on standard error when it is a terminal.
final class Progress {
    private let total: Int
    private var done = 0
    private let started = Date()
    private let enabled = isatty(STDERR_FILENO) != 0 && !Console.quiet

    init(total: Int) { self.total = total }

    func advance(by count: Int) {
        done += count
        guard enabled else { return }
        let elapsed = Date().timeIntervalSince(started)
        let remaining = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        let width = 30
        let filled = total > 0 ? width * done / total : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r[\(bar)] \(done)/\(total) ETA \(Int(remaining.rounded()))s ".utf8))
    }

    /// Erases the bar so normal output starts on a clean line.
    func clear() {
        guard enabled, done > 0 else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

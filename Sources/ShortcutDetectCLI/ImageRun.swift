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

    func validate() throws {
        try FlagCheck.number(alpha, "--alpha", in: 0...1)
        try FlagCheck.count(batchSize, "--batch-size")
        if let topK { try FlagCheck.count(topK, "--top-k") }
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
struct ImageRun {
    let command: GradCAMCommand
    let generator: GradCAMHeatmapGenerator
    let report: GradCAMReport
    var options: ImageOptions { command.images }

    func run() throws {
        let files = try imageFiles()
        guard let outPath = options.out else { return }
        let out = URL(fileURLWithPath: outPath)
        try FileIO.createFolder(out)
        let preprocessing = try options.preprocessing.make(for: generator.executor)
        let progress = Progress(total: files.count)
        let faithfulness = try command.makeFaithfulness(generator)
        var scores: [FaithfulnessScores] = []
        var scoredClasses: [Int] = []
        for start in stride(from: 0, to: files.count, by: max(options.batchSize, 1)) {
            let chunk = Array(files[start..<min(start + max(options.batchSize, 1), files.count)])
            let (batch, images, _) = try preprocessing.batch(chunk)
            let probabilities = try generator.executor.classProbabilities(batch, output: generator.outputName, kind: command.outputKind)
            let explained: [[Int]]
            if let topK = options.topK {
                explained = probabilities.map { Array(ClassProbabilities.ranked($0).prefix(max(topK, 1))) }
            } else if let classes = try command.parseClasses(count: chunk.count) {
                explained = classes.map { [$0] }
            } else {
                explained = probabilities.map { [ClassProbabilities.ranked($0)[0]] }
            }
            progress.clear()
            for (index, url) in chunk.enumerated() {
                report.predicted(url.lastPathComponent, probabilities: probabilities[index], count: options.topK ?? 3, explained: explained[index])
            }
            for rank in 0..<(explained.first?.count ?? 1) {
                let classes = explained.map { $0[min(rank, $0.count - 1)] }
                let (maps, written) = try write(batch: batch, images: images, files: chunk, classes: classes, suffix: options.topK == nil ? "" : "_top\(rank + 1)", out: out)
                for (index, files) in written.enumerated() { report.wrote(image: start + index, files: files) }
                // The metrics score each image's first explained class.
                if rank == 0, let faithfulness, let maps {
                    scores += try faithfulness.evaluate(
                        batch, heatmaps: command.metricMaps(maps), classes: classes, indices: Array(start..<start + chunk.count),
                        baseline: probabilities)
                    scoredClasses += classes
                }
            }
            progress.advance(by: chunk.count)
        }
        progress.finish()
        Console.say("wrote \(files.count) overlay(s) to \(out.path)")
        if let faithfulness, let path = command.metricsJSON {
            try faithfulness.json(scores, classes: scoredClasses, files: files.map(\.lastPathComponent)).write(to: URL(fileURLWithPath: path))
            report.wrote(path, "wrote the faithfulness metrics of \(scores.count) map(s) to \(path)")
        }
    }

    /// Heatmaps for one batch and class choice, then the pictures, written in parallel; returns
    /// the CAM heatmaps (none for pure guided backpropagation) and the paths written per image.
    private func write(batch: Tensor, images: [RGBImage], files: [URL], classes: [Int], suffix: String, out: URL) throws -> (Tensor?, [[String]]) {
        let pictures: [RGBImage]
        var heatmaps: Tensor?
        switch command.method {
        case .guidedBackprop, .guidedGradCAM:
            var guided = try generator.guidedBackprop(batch, targetClasses: classes)
            if command.method == .guidedGradCAM {
                let result = try generator.explain(batch, targetClasses: classes)
                heatmaps = result.heatmaps
                guided = try generator.guidedGradCAM(guided: guided, heatmaps: result.heatmaps)
            }
            pictures = try (0..<files.count).map { try Overlay.deprocess(guided.sliced(axis: 0, $0..<$0 + 1).reshaped(Array(guided.shape.dropFirst()))) }
        default:
            let maps = try generator.explain(batch, targetClasses: classes).heatmaps
            heatmaps = maps
            pictures = try (0..<files.count).map { index in
                try generator.overlay(images[index], heatmap: heatmap(maps, index), alpha: options.alpha, colormap: options.colormap)
            }
        }
        let results = ConcurrentResults<[String]>(count: files.count)
        let maps = heatmaps
        DispatchQueue.concurrentPerform(iterations: files.count) { index in
            results.set(index) {
                let stem = files[index].deletingPathExtension().lastPathComponent + suffix
                try PNG.write(pictures[index], to: out.appendingPathComponent(stem + ".png"))
                if let maps {
                    let map = try heatmap(maps, index)
                    if options.saveNpy { try map.writeNPY(to: out.appendingPathComponent(stem + ".npy")) }
                    if options.panel {
                        let figure = try Panel.comparison(image: images[index], heatmap: map, alpha: options.alpha, colormap: options.colormap)
                        try PNG.write(figure, to: out.appendingPathComponent(stem + "_panel.png"))
                    }
                }
                let endings = [".png"] + (maps != nil && options.saveNpy ? [".npy"] : []) + (maps != nil && options.panel ? ["_panel.png"] : [])
                return endings.map { out.appendingPathComponent(stem + $0).path }
            }
        }
        return (heatmaps, try results.values())
    }

    private func heatmap(_ maps: Tensor, _ index: Int) throws -> Tensor {
        try maps.sliced(axis: 0, index..<index + 1).reshaped(Array(maps.shape.dropFirst()))
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

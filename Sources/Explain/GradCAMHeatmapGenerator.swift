import Foundation
import GraphEngine
import ONNXModel
import TensorCore

/// How heatmaps are scaled before they are returned.
public enum HeatmapNormalization: String, Sendable, CaseIterable {
    /// pytorch-grad-cam's `scale_cam_image`, step for step: per image `(m − min) / (max + 1e-7)`
    /// before upsampling, and again after averaging layers. Maps land in [0, 1) but their
    /// magnitudes are no longer comparable across images.
    case minMax = "minmax"
    /// ReLU, upsample and average layers only: values keep the units of the raw map.
    case none
}

/// Options beyond the method itself.
public struct CAMOptions: Sendable {
    /// Take the first principal component of the weighted activations (pytorch-grad-cam's `eigen_smooth`).
    public var eigenSmooth: Bool
    /// Average the heatmaps of six augmented inputs (no flip or horizontal flip, times 0.9, 1
    /// and 1.1), each flipped back, as pytorch-grad-cam's `aug_smooth` does.
    public var augSmooth: Bool
    /// How maps are scaled before they are returned.
    public var normalization: HeatmapNormalization
    /// How layer maps are resized to the input's size.
    public var upsampling: MapResize
    /// How the target layers hold channels and positions; decided per layer from the graph and
    /// the tensor's shape when `nil` (from the ops that produce and read it).
    public var layerLayout: LayerLayout?
    /// How the model's input orders an image batch; read from its declared shape when `nil`
    /// (see ``ImageLayout/declared(by:)``).
    public var inputLayout: ImageLayout?
    /// Masked inputs per forward pass in ScoreCAM (pytorch-grad-cam's default is 16).
    public var scoreCAMBatchSize: Int

    /// Options with pytorch-grad-cam's defaults unless given.
    public init(
        eigenSmooth: Bool = false, augSmooth: Bool = false, normalization: HeatmapNormalization = .minMax,
        upsampling: MapResize = .bilinear, layerLayout: LayerLayout? = nil, inputLayout: ImageLayout? = nil,
        scoreCAMBatchSize: Int = 16
    ) {
        self.eigenSmooth = eigenSmooth
        self.augSmooth = augSmooth
        self.normalization = normalization
        self.upsampling = upsampling
        self.layerLayout = layerLayout
        self.inputLayout = inputLayout
        self.scoreCAMBatchSize = scoreCAMBatchSize
    }
}

/// Everything one CAM computation produced.
public struct CAMResult: Sendable {
    /// `[N, H, W]` float32 heatmaps at input resolution.
    public let heatmaps: Tensor
    /// Per target layer, `[N, h, w]` float32 maps at the layer's resolution, before ReLU and normalization.
    public let rawMaps: [Tensor]
    /// The class each sample's map explains.
    public let classes: [Int]
    /// The model output for the (unaugmented) batch.
    public let logits: Tensor
    /// Per target layer, the layout its tensor was read in.
    public let layerLayouts: [LayerLayout]
    /// The further tensors ``GradCAMHeatmapGenerator/explain(_:targetClasses:fetch:)`` was asked
    /// for, from the same forward pass (of the unaugmented batch), by name.
    public var fetched: [String: Tensor] = [:]
}

/// Class activation maps of an ONNX image classifier at chosen layers, with pytorch-grad-cam's numbers.
///
/// ```swift
/// let model = try Model(contentsOf: URL(fileURLWithPath: "resnet50.onnx"))
/// let gradcam = try GradCAMHeatmapGenerator(model: model, targetLayer: "layer4")
/// let heatmap = try gradcam.generate(image, targetClass: 1)   // [H, W] in [0, 1)
/// ```
public final class GradCAMHeatmapGenerator: Sendable {
    /// Runs the model forward and backward.
    public let executor: Executor
    /// The resolved target layers; heatmaps average over them.
    public let layers: [ResolvedLayer]
    /// How activations and gradients become a map.
    public let method: CAMMethod
    /// Guided GradCAM: ``generate(_:targetClass:)`` returns the CAM times guided backpropagation.
    public let useGuided: Bool
    /// Smoothing, normalization, upsampling and layouts.
    public let options: CAMOptions
    /// The model output the maps explain (its first unless another was chosen).
    public let outputName: String
    /// How the model's input orders an image batch (`[N, C, H, W]` unless it is channels-last).
    public let inputLayout: ImageLayout
    /// Decides each layer's layout when ``CAMOptions/layerLayout`` does not.
    package let layouts: LayerLayouts
    private let inputName: String

    /// A generator for the layers `targetLayers`, whose maps it averages.
    ///
    /// - Parameters:
    ///   - model: The classifier; its first input takes `[N, C, H, W]` images (`[N, H, W, C]` when
    ///     it is channels-last), its first output `[N, classes]`.
    ///   - targetLayers: Layers by tensor name, node name or PyTorch module path (see ``LayerResolver``).
    ///   - useGuided: Multiply the map by guided backpropagation (Guided GradCAM).
    ///   - method: The CAM method.
    ///   - allowNoLayers: Permit an empty layer list, for guided backpropagation alone.
    ///   - output: The `[N, classes]` output to explain, by name; the first output by default
    ///     (a model with several heads, say a disease and a protected attribute, has one per head).
    public init(
        model: Model, targetLayers: [String], useGuided: Bool = false, method: CAMMethod = .gradCAM,
        options: CAMOptions = CAMOptions(), allowNoLayers: Bool = false, output: String? = nil
    ) throws {
        executor = try Executor(model: model)
        let resolver = LayerResolver(model: model)
        layers = try targetLayers.map(resolver.resolve)
        guard !layers.isEmpty || allowNoLayers else { throw ExplainError.invalidConfiguration("at least one target layer is needed") }
        guard let input = executor.inputs.first?.name, let first = executor.outputs.first?.name else {
            throw ExplainError.invalidConfiguration("the model needs an input and an output")
        }
        if let output, !executor.outputs.contains(where: { $0.name == output }) {
            throw ExplainError.invalidConfiguration(
                "the model has no output '\(output)'; its outputs are \(executor.outputs.map(\.name).joined(separator: ", "))")
        }
        inputName = input
        outputName = output ?? first
        inputLayout = options.inputLayout ?? executor.imageLayout
        layouts = LayerLayouts(model: model, inputLayout: inputLayout)
        self.useGuided = useGuided
        self.method = method
        self.options = options
    }

    /// A generator for one target layer.
    public convenience init(
        model: Model, targetLayer: String, useGuided: Bool = false, method: CAMMethod = .gradCAM,
        options: CAMOptions = CAMOptions(), output: String? = nil
    ) throws {
        try self.init(model: model, targetLayers: [targetLayer], useGuided: useGuided, method: method, options: options, output: output)
    }

    /// The heatmap of one image (`[C, H, W]` or `[1, C, H, W]`, channels last for a channels-last
    /// model) for `targetClass`, or for the predicted class: `[H, W]`, or `[H, W, 3]` with `useGuided`.
    public func generate(_ input: Tensor, targetClass: Int? = nil) throws -> Tensor {
        let batch = input.rank == 3 ? try input.reshaped([1] + input.shape) : input
        guard batch.rank == 4, batch.shape[0] == 1 else {
            throw ExplainError.invalidInput("generate takes one image shaped \(inputLayout == .nchw ? "[C, H, W] or [1, C, H, W]" : "[H, W, C] or [1, H, W, C]"), got \(input.shape); use generateBatch")
        }
        let maps = try generateBatch(batch, targetClasses: targetClass.map { [$0] })
        return maps[0]
    }

    /// One heatmap per image of a batch (`[N, C, H, W]`, or `[N, H, W, C]` for a channels-last
    /// model); `targetClasses` nil explains each prediction.
    public func generateBatch(_ inputs: Tensor, targetClasses: [Int]? = nil) throws -> [Tensor] {
        var maps: Tensor
        if useGuided {
            let (guided, cam) = try guidedAndCAM(inputs, targetClasses: targetClasses)
            maps = try guidedGradCAM(guided: guided, heatmaps: cam.heatmaps)
        } else {
            maps = try explain(inputs, targetClasses: targetClasses).heatmaps
        }
        return try (0..<maps.shape[0]).map { try maps.sliced(axis: 0, $0..<$0 + 1).reshaped(Array(maps.shape.dropFirst())) }
    }

    /// One heatmap per image of a large batch, computed `batchSize` images at a time, checking for
    /// cancellation before each chunk and reporting progress after it.
    ///
    /// The maps equal those of ``generateBatch(_:targetClasses:)`` called on each chunk. Each chunk
    /// runs synchronously on the calling task; between chunks the task yields.
    ///
    /// - Parameters:
    ///   - inputs: `[N, C, H, W]` images (`[N, H, W, C]` for a channels-last model).
    ///   - targetClasses: One class per image, or `nil` to explain each prediction.
    ///   - batchSize: Images per forward and backward pass.
    ///   - progress: Called after each chunk with the images done so far and `N`.
    /// - Throws: `CancellationError` when the task is cancelled (the chunk under way completes first).
    public func generateBatch(
        _ inputs: Tensor, targetClasses: [Int]? = nil, batchSize: Int, progress: (@Sendable (BatchProgress) -> Void)? = nil
    ) async throws -> [Tensor] {
        guard inputs.rank == 4 else {
            throw ExplainError.invalidInput("images must be \(inputLayout == .nchw ? "[N, C, H, W]" : "[N, H, W, C]"), got \(inputs.shape)")
        }
        guard batchSize > 0 else { throw ExplainError.invalidConfiguration("the batch size must be positive, got \(batchSize)") }
        let total = inputs.shape[0]
        if let targetClasses, targetClasses.count != total {
            throw ExplainError.invalidTarget("\(targetClasses.count) target classes were given for a batch of \(total)")
        }
        var maps: [Tensor] = []
        for start in stride(from: 0, to: total, by: batchSize) {
            try Task.checkCancellation()
            let range = start..<min(start + batchSize, total)
            maps += try generateBatch(inputs.sliced(axis: 0, range), targetClasses: targetClasses.map { Array($0[range]) })
            progress?(BatchProgress(completed: range.upperBound, total: total))
            await Task.yield()
        }
        return maps
    }

    /// Heatmaps, raw layer maps, classes and logits for a batch in the model's ``inputLayout``.
    ///
    /// One forward and one reverse pass (six of each with augmentation smoothing): the logits
    /// come from the same forward pass as the maps, and so does each tensor named in `fetch`
    /// (an embedding layer, say), so a caller never runs the model again to get them.
    public func explain(_ inputs: Tensor, targetClasses: [Int]? = nil, fetch: [String] = []) throws -> CAMResult {
        guard inputs.rank == 4 else {
            throw ExplainError.invalidInput("images must be \(inputLayout == .nchw ? "[N, C, H, W]" : "[N, H, W, C]"), got \(inputs.shape)")
        }
        guard options.augSmooth else { return try explainOnce(inputs, targetClasses: targetClasses, fetch: fetch) }
        var sum: [Double]?
        var plain: CAMResult?
        for flip in [false, true] {
            for factor in [0.9, 1, 1.1] {
                var augmented = flip ? try Self.flipped(inputs, axis: inputLayout.widthAxis) : inputs
                if factor != 1 { augmented = try Self.scaled(augmented, by: factor) }
                let plainPass = !flip && factor == 1
                let result = try explainOnce(augmented, targetClasses: targetClasses, fetch: plainPass ? fetch : [])
                if plainPass { plain = result }
                let maps = try (flip ? Self.flipped(result.heatmaps, axis: 2) : result.heatmaps).doubles()
                sum = sum.map { zip($0, maps).map { $0 + $1 } } ?? maps
            }
        }
        guard let plain, let sum else { throw ExplainError.invalidInput("augmentation produced no maps") }
        let mean = try Tensor(shape: plain.heatmaps.shape, scalars: sum.map { Float($0 / 6) })
        return CAMResult(
            heatmaps: mean, rawMaps: plain.rawMaps, classes: plain.classes, logits: plain.logits, layerLayouts: plain.layerLayouts,
            fetched: plain.fetched)
    }

    /// Each image's highest-scoring class.
    public func predictedClasses(_ inputs: Tensor) throws -> [Int] {
        let output = try executor.run([inputName: inputs], fetch: [outputName])[outputName]
        guard let logits = output, logits.rank == 2 else { throw ExplainError.notAClassifier(shape: output?.shape ?? []) }
        return ClassProbabilities.argmax(try logits.doubles(), width: logits.shape[1])
    }

    /// Guided backpropagation: `∂ logit[n, cₙ] / ∂ input` with every Relu gated, as `[N, H, W, C]`.
    public func guidedBackprop(_ inputs: Tensor, targetClasses: [Int]? = nil) throws -> Tensor {
        let result = try executor.gradients(
            [inputName: inputs], of: .logit(classes: targetClasses), output: outputName, wrt: [inputName], guided: true)
        guard let gradient = result.gradients[inputName] else { throw ExplainError.invalidInput("no input gradient") }
        return inputLayout == .nhwc ? gradient : try gradient.transposed([0, 2, 3, 1])
    }

    /// Guided backpropagation and the CAM for one batch, in one reverse pass where the two agree.
    ///
    /// Guided backpropagation gates the gradient at every Relu; the CAM needs the plain gradient
    /// at its layers. Where no Relu lies between the target layers and the output (a ResNet's
    /// last stage, a transformer's blocks), the gradient reaching the layers is the same either
    /// way, so one guided pass gives both: the guided gradient at the input and the CAM's
    /// gradients at the layers. Otherwise (VGG's classifier has Relus) the CAM gets its own pass.
    /// - Returns: Guided backpropagation `[N, H, W, C]` and the CAM's result.
    public func guidedAndCAM(_ inputs: Tensor, targetClasses: [Int]? = nil) throws -> (guided: Tensor, cam: CAMResult) {
        guard sharesGuidedPass, inputs.rank == 4 else {
            let cam = try explain(inputs, targetClasses: targetClasses)
            return (try guidedBackprop(inputs, targetClasses: cam.classes), cam)
        }
        let tensors = layers.map(\.tensor)
        let result = try executor.gradients(
            [inputName: inputs], of: .logit(classes: targetClasses), output: outputName, wrt: [inputName] + tensors, guided: true)
        guard let gradient = result.gradients[inputName] else { throw ExplainError.invalidInput("no input gradient") }
        let cam = try maps(inputs, activations: result.values, gradients: result.gradients, logits: result.output, targetClasses: targetClasses, fetch: [])
        return (inputLayout == .nhwc ? gradient : try gradient.transposed([0, 2, 3, 1]), cam)
    }

    /// Whether ``guidedAndCAM(_:targetClasses:)`` can share one reverse pass: a gradient method
    /// without augmentation, and no Relu between any target layer and the output.
    public var sharesGuidedPass: Bool {
        guard method.usesGradients, method != .scoreCAM, !options.augSmooth, !layers.isEmpty else { return false }
        let nodes = executor.model.graph.nodes
        // Tensors computed from the layers, then the nodes among their consumers that lead to the output.
        var downstream = Set(layers.map(\.tensor))
        var between: [Node] = []
        for node in nodes where node.inputs.contains(where: downstream.contains) {
            downstream.formUnion(node.outputs)
            between.append(node)
        }
        var upstream: Set<String> = [outputName]
        for node in nodes.reversed() where node.outputs.contains(where: upstream.contains) { upstream.formUnion(node.inputs) }
        return !between.contains { $0.opType == "Relu" && $0.outputs.contains(where: upstream.contains) }
    }

    /// Guided GradCAM: guided backpropagation `[N, H, W, C]` times the heatmaps `[N, H, W]`.
    public func guidedGradCAM(guided: Tensor, heatmaps: Tensor) throws -> Tensor {
        let mask = try heatmaps.reshaped(heatmaps.shape + [1]).converted(to: guided.dtype)
        return try guided.multiplied(by: mask)
    }

    // MARK: - One pass

    private func explainOnce(_ inputs: Tensor, targetClasses: [Int]?, fetch: [String]) throws -> CAMResult {
        let tensors = layers.map(\.tensor)
        if method.usesGradients {
            let result = try executor.gradients(
                [inputName: inputs], of: .logit(classes: targetClasses), output: outputName, wrt: tensors, fetch: fetch)
            return try maps(inputs, activations: result.values, gradients: result.gradients, logits: result.output, targetClasses: targetClasses, fetch: fetch)
        }
        let activations = try executor.run([inputName: inputs], fetch: [outputName] + tensors + fetch)
        guard let output = activations[outputName] else { throw ExplainError.notAClassifier(shape: []) }
        return try maps(inputs, activations: activations, gradients: [:], logits: output, targetClasses: targetClasses, fetch: fetch)
    }

    /// The CAM from one pass's layer values and gradients.
    private func maps(
        _ inputs: Tensor, activations: [String: Tensor], gradients: [String: Tensor], logits: Tensor, targetClasses: [Int]?, fetch: [String]
    ) throws -> CAMResult {
        guard logits.rank == 2, logits.shape[0] == inputs.shape[0] else {
            throw ExplainError.notAClassifier(shape: logits.shape)
        }
        let scores = try logits.doubles()
        let classes = targetClasses ?? ClassProbabilities.argmax(scores, width: logits.shape[1])
        let (batch, height, width) = (inputs.shape[0], inputs.shape[inputLayout.heightAxis], inputs.shape[inputLayout.widthAxis])

        var raws: [Tensor] = []
        var upsampled: [Tensor] = []
        var layerLayouts: [LayerLayout] = []
        for layer in layers {
            guard let value = activations[layer.tensor] else { throw ExplainError.layer(layer.request, reason: "was not computed") }
            let (a, g, layout) = try read(value, gradients[layer.tensor], layer: layer, height: height, width: width)
            layerLayouts.append(layout)
            let (channels, h, w) = (a.shape[1], a.shape[2], a.shape[3])
            let positions = h * w
            let weights = method == .scoreCAM ? try scoreWeights(inputs, activations: a, classes: classes) : nil
            var raw = [Float](repeating: 0, count: batch * positions)
            /// Each sample's raw map from the layer's values as stored (float32 or float64).
            func maps<S: TensorScalar & BinaryFloatingPoint>(_ type: S.Type, _ a: Tensor, _ g: Tensor?) throws {
                try a.withUnsafeBuffer(as: S.self) { av in
                    try (g ?? a).withUnsafeBuffer(as: S.self) { gv in
                        let size = channels * positions
                        for n in 0..<batch {
                            let map = method.rawMap(
                                activations: UnsafeBufferPointer(rebasing: av[n * size..<(n + 1) * size]),
                                gradients: UnsafeBufferPointer(rebasing: gv[g == nil ? 0..<0 : n * size..<(n + 1) * size]),
                                channels: channels, positions: positions, eigenSmooth: options.eigenSmooth,
                                channelWeights: weights?[n])
                            for p in 0..<positions { raw[n * positions + p] = Float(map[p]) }
                        }
                    }
                }
            }
            if a.dtype == .float32, g?.dtype ?? .float32 == .float32 {
                try maps(Float.self, a, g)
            } else {
                try maps(Double.self, a.converted(to: .float64), g?.converted(to: .float64))
            }
            raws.append(try Tensor(shape: [batch, h, w], scalars: raw))
            // ReLU, per-image scaling and upsampling, in float32 (as pytorch-grad-cam computes them).
            let maps = try Tensor(uninitialized: .float32, shape: [batch, height, width])
            try raw.withUnsafeMutableBufferPointer { raw in
                guard let base = raw.baseAddress else { return }
                for i in raw.indices { raw[i] = max(raw[i], 0) }
                if options.normalization == .minMax {
                    for n in 0..<batch { Self.minMax(base + n * positions, count: positions) }
                }
                try options.upsampling.apply(
                    base, count: batch, height: h, width: w, outHeight: height, outWidth: width,
                    into: maps.unsafeMutableElements(as: Float.self).address(count: batch * height * width))
            }
            upsampled.append(maps)
        }
        // Average the layers (after a ReLU), then scale each image again, as pytorch-grad-cam does.
        let size = height * width
        let heatmaps = try Tensor(zeros: .float32, shape: [batch, height, width])
        let mean = heatmaps.unsafeMutableElements(as: Float.self)
        let share = Float(upsampled.count)
        for maps in upsampled {
            let values = maps.unsafeElements(as: Float.self)
            withExtendedLifetime(maps) { for i in 0..<batch * size { mean[i] += max(values[i], 0) / share } }
        }
        if options.normalization == .minMax { for n in 0..<batch { Self.minMax(mean.address(at: n * size, count: size), count: size) } }
        return CAMResult(
            heatmaps: heatmaps, rawMaps: raws, classes: classes, logits: logits, layerLayouts: layerLayouts,
            fetched: fetch.reduce(into: [:]) { $0[$1] = activations[$1] })
    }

    /// A layer's activations and gradients as `[N, C, h, w]` (channels-last maps transposed,
    /// tokens laid on their grid), and the layout they were read in.
    private func read(_ a: Tensor, _ g: Tensor?, layer: ResolvedLayer, height: Int, width: Int) throws -> (Tensor, Tensor?, LayerLayout) {
        do {
            let layout = try options.layerLayout ?? layouts.layout(of: layer.tensor, shape: a.shape, image: (height, width))
            return (
                try layout.channelsFirst(a, height: height, width: width), try g.map { try layout.channelsFirst($0, height: height, width: width) },
                layout
            )
        } catch {
            throw ExplainError.layer(layer.request, reason: "\(error)")
        }
    }

    /// ScoreCAM's channel weights per sample: softmax over channels of the target score of the
    /// input masked by each channel (upsampled with aligned corners and scaled to [0, 1]).
    private func scoreWeights(_ inputs: Tensor, activations a: Tensor, classes: [Int]) throws -> [[Double]] {
        let (batch, channels, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
        let layout = inputLayout
        let (inputChannels, height, width) = (inputs.shape[layout.channelAxis], inputs.shape[layout.heightAxis], inputs.shape[layout.widthAxis])
        let av = try a.doubles()
        let image = try inputs.converted(to: .float32).scalars(as: Float.self)
        let imageSize = inputChannels * height * width
        let chunk = max(options.scoreCAMBatchSize, 1)
        return try (0..<batch).map { n in
            var scores: [Double] = []
            for start in stride(from: 0, to: channels, by: chunk) {
                let count = min(chunk, channels - start)
                var masked = [Float](repeating: 0, count: count * imageSize)
                for j in 0..<count {
                    let offset = ((n * channels) + start + j) * h * w
                    let up = MapResize.bilinearAlignCorners.apply(
                        Array(av[offset..<offset + h * w]), height: h, width: w, outHeight: height, outWidth: width)
                    let low = up.min() ?? 0
                    let high = up.max() ?? 0
                    for c in 0..<inputChannels {
                        for p in 0..<height * width {
                            let mask = (up[p] - low) / (high - low + 1e-8)
                            let offset = layout == .nchw ? c * height * width + p : p * inputChannels + c
                            masked[j * imageSize + offset] = image[n * imageSize + offset] * Float(mask)
                        }
                    }
                }
                let batchInput = try Tensor(shape: [count] + inputs.shape.dropFirst(), scalars: masked).converted(to: inputs.dtype)
                guard let output = try executor.run([inputName: batchInput], fetch: [outputName])[outputName] else {
                    throw ExplainError.notAClassifier(shape: [])
                }
                let values = try output.doubles()
                let classCount = output.shape.last ?? 1
                scores += (0..<count).map { values[$0 * classCount + classes[n]] }
            }
            return ClassProbabilities.softmax(scores)
        }
    }

    /// pytorch-grad-cam's per-image scaling of `count` values in place, in float32 as it computes:
    /// subtract the minimum, divide by `1e-7 + max`.
    static func minMax(_ map: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        var low = map[0]
        for i in 1..<count { low = min(low, map[i]) }
        var high = map[0] - low
        for i in 0..<count {
            map[i] -= low
            high = max(high, map[i])
        }
        let divisor = 1e-7 + high
        for i in 0..<count { map[i] /= divisor }
    }

    /// The batch mirrored left to right: reversed along `axis`, the width.
    static func flipped(_ x: Tensor, axis: Int) throws -> Tensor {
        let width = x.shape[axis]
        let inner = x.shape[(axis + 1)...].reduce(1, *)
        let values = try x.converted(to: .float32).scalars(as: Float.self)
        var result = values
        for row in 0..<(x.count / max(width * inner, 1)) {
            for i in 0..<width {
                let (to, from) = ((row * width + i) * inner, (row * width + width - 1 - i) * inner)
                for k in 0..<inner { result[to + k] = values[from + k] }
            }
        }
        return try Tensor(shape: x.shape, scalars: result).converted(to: x.dtype)
    }

    static func scaled(_ x: Tensor, by factor: Double) throws -> Tensor {
        let values = try x.converted(to: .float32).scalars(as: Float.self)
        return try Tensor(shape: x.shape, scalars: values.map { $0 * Float(factor) }).converted(to: x.dtype)
    }
}

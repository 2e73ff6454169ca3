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
    public var eigenSmooth: Bool
    /// Average the heatmaps of six augmented inputs (no flip or horizontal flip, times 0.9, 1
    /// and 1.1), each flipped back, as pytorch-grad-cam's `aug_smooth` does.
    public var augSmooth: Bool
    public var normalization: HeatmapNormalization
    public var upsampling: MapResize
    /// How the target layers hold channels and positions; decided per layer from the graph and
    /// the tensor's shape when `nil` (see ``LayerLayouts``).
    public var layerLayout: LayerLayout?
    /// How the model's input orders an image batch; read from its declared shape when `nil`
    /// (see ``ImageLayout/declared(by:)``).
    public var inputLayout: ImageLayout?
    /// Masked inputs per forward pass in ScoreCAM (pytorch-grad-cam's default is 16).
    public var scoreCAMBatchSize: Int

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
    public let executor: Executor
    /// The resolved target layers; heatmaps average over them.
    public let layers: [ResolvedLayer]
    public let method: CAMMethod
    /// Guided GradCAM: ``generate(_:targetClass:)`` returns the CAM times guided backpropagation.
    public let useGuided: Bool
    public let options: CAMOptions
    /// The model output the maps explain (its first unless another was chosen).
    public let outputName: String
    /// How the model's input orders an image batch (`[N, C, H, W]` unless it is channels-last).
    public let inputLayout: ImageLayout
    /// Decides each layer's layout when ``CAMOptions/layerLayout`` does not.
    public let layouts: LayerLayouts
    private let inputName: String

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
        guard !layers.isEmpty || allowNoLayers else { throw OpError("at least one target layer is needed") }
        guard let input = executor.inputs.first?.name, let first = executor.outputs.first?.name else {
            throw GraphError.inputMismatch("the model needs an input and an output")
        }
        if let output, !executor.outputs.contains(where: { $0.name == output }) {
            throw GraphError.inputMismatch(
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
            throw OpError("generate takes one image shaped \(inputLayout == .nchw ? "[C, H, W] or [1, C, H, W]" : "[H, W, C] or [1, H, W, C]"), got \(input.shape); use generateBatch")
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

    /// Heatmaps, raw layer maps, classes and logits for a batch in the model's ``inputLayout``.
    ///
    /// One forward and one reverse pass (six of each with augmentation smoothing): the logits
    /// come from the same forward pass as the maps, and so does each tensor named in `fetch`
    /// (an embedding layer, say), so a caller never runs the model again to get them.
    public func explain(_ inputs: Tensor, targetClasses: [Int]? = nil, fetch: [String] = []) throws -> CAMResult {
        guard inputs.rank == 4 else {
            throw OpError("images must be \(inputLayout == .nchw ? "[N, C, H, W]" : "[N, H, W, C]"), got \(inputs.shape)")
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
        guard let plain, let sum else { throw OpError("augmentation produced no maps") }
        let mean = try Tensor(shape: plain.heatmaps.shape, scalars: sum.map { Float($0 / 6) })
        return CAMResult(
            heatmaps: mean, rawMaps: plain.rawMaps, classes: plain.classes, logits: plain.logits, layerLayouts: plain.layerLayouts,
            fetched: plain.fetched)
    }

    /// `x`, the value of `tensor` for the batch `inputs`, as `[N, C, h, w]` when it is a 4-D map
    /// (read in ``CAMOptions/layerLayout`` when `tensor` is a target layer's); other ranks unchanged.
    public func channelsFirstMap(_ x: Tensor, of tensor: String, inputs: Tensor) throws -> Tensor {
        guard inputs.rank == 4 else { throw OpError("images must be a 4-D batch, got \(inputs.shape)") }
        let layout = layers.contains { $0.tensor == tensor } ? options.layerLayout : nil
        return try layouts.channelsFirstMap(
            x, of: tensor, image: (inputs.shape[inputLayout.heightAxis], inputs.shape[inputLayout.widthAxis]), layout: layout)
    }

    /// Each image's highest-scoring class.
    public func predictedClasses(_ inputs: Tensor) throws -> [Int] {
        guard let logits = try executor.run([inputName: inputs], fetch: [outputName])[outputName], logits.rank == 2 else {
            throw OpError("the model's output \(outputName) is not [batch, classes]")
        }
        return GradientTarget.argmax(try logits.doubles(), rows: logits.shape[0], width: logits.shape[1])
    }

    /// Guided backpropagation: `∂ logit[n, cₙ] / ∂ input` with every Relu gated, as `[N, H, W, C]`.
    public func guidedBackprop(_ inputs: Tensor, targetClasses: [Int]? = nil) throws -> Tensor {
        let result = try executor.gradients(
            [inputName: inputs], of: .logit(classes: targetClasses), output: outputName, wrt: [inputName], guided: true)
        guard let gradient = result.gradients[inputName] else { throw OpError("no input gradient") }
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
        guard let gradient = result.gradients[inputName] else { throw OpError("no input gradient") }
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
        guard let output = activations[outputName] else { throw OpError("the model produced no output") }
        return try maps(inputs, activations: activations, gradients: [:], logits: output, targetClasses: targetClasses, fetch: fetch)
    }

    /// The CAM from one pass's layer values and gradients.
    private func maps(
        _ inputs: Tensor, activations: [String: Tensor], gradients: [String: Tensor], logits: Tensor, targetClasses: [Int]?, fetch: [String]
    ) throws -> CAMResult {
        guard logits.rank == 2, logits.shape[0] == inputs.shape[0] else {
            throw OpError("CAM needs a [batch, classes] output, got \(logits.shape)")
        }
        let scores = try logits.doubles()
        let classes = targetClasses ?? GradientTarget.argmax(scores, rows: logits.shape[0], width: logits.shape[1])
        let (batch, height, width) = (inputs.shape[0], inputs.shape[inputLayout.heightAxis], inputs.shape[inputLayout.widthAxis])

        var raws: [Tensor] = []
        var upsampled: [[Double]] = []
        var layerLayouts: [LayerLayout] = []
        for layer in layers {
            guard let value = activations[layer.tensor] else { throw OpError("layer \(layer.request) was not computed") }
            let (a, g, layout) = try read(value, gradients[layer.tensor], layer: layer, height: height, width: width)
            layerLayouts.append(layout)
            let (channels, h, w) = (a.shape[1], a.shape[2], a.shape[3])
            let positions = h * w
            let av = try a.doubles()
            let gv = try g?.doubles() ?? []
            let weights = method == .scoreCAM ? try scoreWeights(inputs, activations: a, classes: classes) : nil
            var raw: [Double] = []
            var maps: [Double] = []
            for n in 0..<batch {
                let range = n * channels * positions..<(n + 1) * channels * positions
                let map = method.rawMap(
                    activations: Array(av[range]), gradients: gv.isEmpty ? [] : Array(gv[range]), channels: channels,
                    positions: positions, eigenSmooth: options.eigenSmooth, channelWeights: weights?[n])
                raw += map
                var scaled = map.map { max($0, 0) }
                if options.normalization == .minMax { scaled = Self.minMax(scaled) }
                maps += options.upsampling.apply(scaled, height: h, width: w, outHeight: height, outWidth: width)
            }
            raws.append(try Tensor(shape: [batch, h, w], scalars: raw.map { Float($0) }))
            upsampled.append(maps)
        }
        // Average the layers (after a ReLU), then scale each image again, as pytorch-grad-cam does.
        let size = height * width
        var heatmaps = [Float](repeating: 0, count: batch * size)
        for n in 0..<batch {
            var mean = [Double](repeating: 0, count: size)
            for maps in upsampled { for i in 0..<size { mean[i] += max(maps[n * size + i], 0) / Double(upsampled.count) } }
            if options.normalization == .minMax { mean = Self.minMax(mean) }
            for i in 0..<size { heatmaps[n * size + i] = Float(mean[i]) }
        }
        return CAMResult(
            heatmaps: try Tensor(shape: [batch, height, width], scalars: heatmaps), rawMaps: raws, classes: classes, logits: logits,
            layerLayouts: layerLayouts, fetched: fetch.reduce(into: [:]) { $0[$1] = activations[$1] })
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
            throw OpError("layer '\(layer.request)': \(error)")
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
                    throw OpError("the model produced no output")
                }
                let values = try output.doubles()
                let classCount = output.shape.last ?? 1
                scores += (0..<count).map { values[$0 * classCount + classes[n]] }
            }
            return ClassProbabilities.softmax(scores)
        }
    }

    /// pytorch-grad-cam's per-image scaling: subtract the minimum, divide by `1e-7 + max`.
    static func minMax(_ map: [Double]) -> [Double] {
        let low = map.min() ?? 0
        let shifted = map.map { $0 - low }
        let high = shifted.max() ?? 0
        return shifted.map { $0 / (1e-7 + high) }
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

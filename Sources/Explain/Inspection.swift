import Foundation
import GraphEngine
import ONNXModel
import TensorCore

/// What `shortcut-detect inspect` reports about a model: interface, ops, and the layers a
/// GradCAM user would likely pick.
public struct ModelInspection {
    /// A module whose output is a sensible CAM target.
    public struct LayerCandidate {
        public enum Kind: String { case convolutional = "conv", tokens = "tokens", unknown = "?" }
        /// Names `gradcam --layer` accepts for this layer, each resolving to ``tensor``: its PyTorch
        /// module paths (several when nested modules end at the same node, e.g. `layer4.1` and
        /// `layer4.1.relu`), else its node name, else the tensor's own name.
        public let names: [String]
        /// The ONNX tensor holding the module's output.
        public let tensor: String
        /// The tensor's shape at batch 1, when it could be computed.
        public let shape: [Int]?
        public let kind: Kind
        /// Whether this is the layer we would pick first.
        public let recommended: Bool

        /// The name to pass to `gradcam --layer`.
        public var name: String { names[0] }
    }

    public let model: Model
    /// Op types with how often each occurs, most frequent first.
    public let opHistogram: [(opType: String, count: Int)]
    /// Op types the registry lacks, most used first, with the nodes using them.
    public let unsupported: [MissingOperator]
    /// Elements across all initializers and `Constant` nodes.
    public let parameterCount: Int
    /// Block outputs, in execution order.
    public let candidates: [LayerCandidate]
    /// The image size the shapes were computed at, when the model leaves height or width free.
    public let probedImageSize: (height: Int, width: Int)?
    /// Why shapes (and so a suggestion) are missing, when they are.
    public let shapeNote: String?

    /// The layer to try first: the last spatial map of a CNN (at least 2×2), or the last
    /// transformer block's token sequence; `nil` when no candidate qualifies.
    public var suggested: LayerCandidate? { candidates.first { $0.recommended } }

    /// Inspects `model`.
    ///
    /// - Parameter imageSize: The input size to compute layer shapes at where the model leaves
    ///   height or width free (224 per free axis when `nil`).
    public init(model: Model, registry: OpRegistry = .standard, imageSize: (height: Int, width: Int)? = nil) {
        self.model = model
        let graph = model.graph
        var counts: [String: Int] = [:]
        for node in graph.nodes { counts[node.opType, default: 0] += 1 }
        opHistogram = counts.map { ($0.key, $0.value) }.sorted { ($1.count, $0.opType) < ($0.count, $1.opType) }
        unsupported = MissingOperator.find(in: graph.nodes, registry: registry)
        parameterCount = graph.parameterCount

        let resolver = LayerResolver(model: model)
        let modules = resolver.modules
        let order = modules.map(\.path)
        let tensorOf = Dictionary(modules.map { ($0.path, $0.tensor) }, uniquingKeysWith: { first, _ in first })
        var producer: [String: Int] = [:]
        for (index, node) in graph.nodes.enumerated() { for output in node.outputs { producer[output] = index } }
        // Blocks, outermost only (a block's own numbered children are its internals), plus the
        // first norm of transformer blocks, which is where pytorch-grad-cam users point for ViTs.
        let blockPaths = order.filter { path in
            guard ModelInspection.isBlock(path, among: order) else { return false }
            if path.hasSuffix(".norm1") || path.hasSuffix(".ln_1") { return true }
            return !order.contains { $0 != path && path.hasPrefix($0 + ".") && ModelInspection.isBlock($0, among: order) && !$0.hasSuffix("norm1") && !$0.hasSuffix("ln_1") }
        }
        var blocks: [(paths: [String], tensor: String)] = []
        for path in blockPaths.sorted(by: { (tensorOf[$0].flatMap { producer[$0] } ?? 0) < (tensorOf[$1].flatMap { producer[$0] } ?? 0) }) {
            guard let output = tensorOf[path] else { continue }
            // Nested modules that end at the same node share a tensor: list them once ("layer4 = layer4.1").
            if let existing = blocks.firstIndex(where: { $0.tensor == output }) {
                blocks[existing].paths.append(path)
            } else {
                blocks.append(([path], output))
            }
        }

        var shapes: [String: [Int]] = [:]
        var image: (height: Int, width: Int)?
        var probed: (height: Int, width: Int)?
        var note: String?
        if !unsupported.isEmpty {
            note = "shapes unavailable until the unsupported ops above are implemented"
        } else {
            do {
                let everything = graph.nodes.flatMap(\.outputs).filter { !$0.isEmpty }
                (shapes, image, probed) = try ModelInspection.shapesAtBatchOne(
                    model, tensors: everything, registry: registry, imageSize: imageSize)
            } catch {
                note = "shapes unavailable: \(error)"
            }
        }
        func kind(_ tensor: String) -> LayerCandidate.Kind {
            shapes[tensor].map { ModelInspection.kind(of: $0, image: image) } ?? .unknown
        }
        // In a CNN, the last spatial map before pooling is the classic GradCAM layer.
        let hasTokens = blocks.contains { kind($0.tensor) == .tokens }
        let pools: Set<String> = ["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean"]
        let finalMap = hasTokens ? nil : graph.nodes.indices.last { index in
            !pools.contains(graph.nodes[index].opType) && graph.nodes[index].outputs.first.map { kind($0) == .convolutional } == true
        }
        if let finalMap, let tensor = graph.nodes[finalMap].outputs.first, !blocks.contains(where: { $0.tensor == tensor }) {
            blocks.append((Array(ModuleScopes.paths(of: graph.nodes[finalMap]).suffix(1)), tensor))
        }
        // Keep spatial and token outputs (everything when shapes are unknown); a norm1 counts only on tokens.
        let kept = blocks.filter { block in
            guard !shapes.isEmpty else { return true }
            let k = kind(block.tensor)
            let isNorm = block.paths.contains { $0.hasSuffix(".norm1") || $0.hasSuffix(".ln_1") }
            return isNorm ? k == .tokens : k != .unknown
        }
        // Recommend the final spatial map for CNNs, the last block's first norm for transformers.
        let tokens = kept.filter { kind($0.tensor) == .tokens }
        let pick =
            tokens.isEmpty
            ? kept.last { kind($0.tensor) == .convolutional }?.tensor
            : (tokens.last { $0.paths.contains { $0.hasSuffix(".norm1") || $0.hasSuffix(".ln_1") } } ?? tokens.last)?.tensor
        candidates = kept.map { block in
            LayerCandidate(
                names: ModelInspection.names(for: block.tensor, paths: block.paths, resolver: resolver, graph: graph, producer: producer),
                tensor: block.tensor, shape: shapes[block.tensor], kind: kind(block.tensor),
                recommended: block.tensor == pick)
        }
        probedImageSize = probed
        shapeNote = note
    }

    /// The names of `paths` that `gradcam --layer` resolves to `tensor`; else the producing
    /// node's name if it does; else the tensor name, which always does.
    static func names(
        for tensor: String, paths: [String], resolver: LayerResolver, graph: Graph, producer: [String: Int]
    ) -> [String] {
        func resolves(_ name: String) -> Bool { (try? resolver.resolve(name).tensor) == tensor }
        let valid = paths.filter(resolves)
        if !valid.isEmpty { return valid }
        if let index = producer[tensor], !graph.nodes[index].name.isEmpty, resolves(graph.nodes[index].name) {
            return [graph.nodes[index].name]
        }
        return [tensor]
    }

    /// How a tensor of `shape` (at batch 1) reads as a CAM target: a `[1, C, h, w]` map with
    /// `h, w ≥ 2` (a pooled `[1, C, 1, 1]` gives a constant heatmap), or a `[1, tokens, C]` sequence.
    ///
    /// With the input's `image` size known, a map larger than the image, or one that reads better
    /// as channels-last `[1, h, w, C]` (a LayerNorm over channels, timm's Swin stages: its `h × w`
    /// has the image's aspect ratio where `w × C` does not), is not a spatial map.
    static func kind(of shape: [Int], image: (height: Int, width: Int)?) -> LayerCandidate.Kind {
        if shape.count == 3, shape[1] > 1 { return .tokens }
        guard shape.count == 4, shape[2] >= 2, shape[3] >= 2 else { return .unknown }
        guard let image else { return .convolutional }
        guard shape[2] <= image.height, shape[3] <= image.width else { return .unknown }
        func aspectMismatch(_ height: Int, _ width: Int) -> Double {
            abs(log(Double(height) * Double(image.width) / (Double(width) * Double(image.height))))
        }
        return aspectMismatch(shape[1], shape[2]) < aspectMismatch(shape[2], shape[3]) ? .unknown : .convolutional
    }

    /// A module is a block when it is a numbered child of a container (`layer4.1`, `features.30`,
    /// `blocks.11`), a numbered container with numbered siblings (`layer4`, `encoder_layer_3`,
    /// `denseblock2`), or a transformer block's first norm (`norm1`, `ln_1`).
    static func isBlock(_ path: String, among all: [String]) -> Bool {
        let segments = path.split(separator: ".")
        guard let leaf = segments.last else { return false }
        if leaf == "norm1" || leaf == "ln_1" || leaf.allSatisfy(\.isNumber) { return true }
        guard leaf.last?.isNumber == true, all.contains(where: { $0.hasPrefix(path + ".") }) else { return false }
        let parent = segments.dropLast()
        let stem = leaf.prefix { !$0.isNumber }
        return all.contains { other in
            let otherSegments = other.split(separator: ".")
            guard other != path, otherSegments.dropLast() == parent, let otherLeaf = otherSegments.last else { return false }
            return otherLeaf.prefix { !$0.isNumber } == stem && otherLeaf.last?.isNumber == true
        }
    }

    /// Runs the model once on zeros at batch 1 and returns the shapes of `tensors`, the first
    /// input's image size when it is `[N, C, H, W]`, and that size again when the model left it
    /// free (free height and width take `imageSize`, else 224).
    static func shapesAtBatchOne(
        _ model: Model, tensors: [String], registry: OpRegistry, imageSize: (height: Int, width: Int)?
    ) throws -> (shapes: [String: [Int]], image: (height: Int, width: Int)?, probed: (height: Int, width: Int)?) {
        let executor = try Executor(model: model, registry: registry)
        var image: (height: Int, width: Int)?
        var probed: (height: Int, width: Int)?
        if let dims = executor.inputs.first?.shape, dims.count == 4 {
            let requested = (height: dims[2].fixedExtent ?? imageSize?.height ?? 224, width: dims[3].fixedExtent ?? imageSize?.width ?? 224)
            image = try executor.imageSize(requested: imageSize ?? requested)
            if executor.fixedImageSize == nil { probed = image }
        }
        var feeds: [String: Tensor] = [:]
        for (position, input) in executor.inputs.enumerated() {
            guard let dims = input.shape, let dtype = input.elementType else {
                throw OpError("input '\(input.name)' has no declared type and shape")
            }
            let shape = try dims.enumerated().map { axis, dim -> Int in
                if let size = dim.fixedExtent { return size }
                if axis == 0 { return 1 }
                if position == 0, let image, axis >= 2 { return axis == 2 ? image.height : image.width }
                throw OpError("input '\(input.name)' has a free extent on axis \(axis)")
            }
            feeds[input.name] = try Tensor(zeros: dtype, shape: shape)
        }
        return (try executor.run(feeds, fetch: tensors).mapValues(\.shape), image, probed)
    }
}

import Foundation
import GraphEngine
import ONNXModel
import TensorCore

/// What `shortcut-detect inspect` reports about a model: interface, ops, and the layers a
/// GradCAM user would likely pick.
public struct ModelInspection {
    /// A module whose output is a sensible CAM target.
    public struct LayerCandidate {
        /// What a candidate's tensor holds.
        public enum Kind: String {
            /// A spatial map, `[N, C, h, w]` or `[N, h, w, C]`.
            case convolutional = "conv"
            /// Transformer tokens, `[N, tokens, C]`.
            case tokens = "tokens"
            /// A shape neither reading fits.
            case unknown = "?"
        }
        /// Names `gradcam --layer` accepts for this layer, each resolving to ``tensor``: its PyTorch
        /// module paths (several when nested modules end at the same node, e.g. `layer4.1` and
        /// `layer4.1.relu`), else its node name, else the tensor's own name.
        public let names: [String]
        /// The ONNX tensor holding the module's output.
        public let tensor: String
        /// The tensor's shape at batch 1, when it could be computed.
        public let shape: [Int]?
        /// What the candidate's tensor holds.
        public let kind: Kind
        /// How the tensor holds channels and positions, for maps and tokens.
        public let layout: LayerLayout?
        /// Whether this is the layer we would pick first.
        public let recommended: Bool

        /// The name to pass to `gradcam --layer`.
        public var name: String { names[0] }
    }

    typealias Kind = LayerCandidate.Kind

    /// The inspected model.
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

    /// The layer to try first: the last spatial map before the head pools it (at least 2×2, in
    /// either layout), or the last transformer block's normalized tokens (what its attention
    /// reads); `nil` when no candidate qualifies.
    public var suggested: LayerCandidate? { candidates.first { $0.recommended } }

    /// Inspects `model`.
    ///
    /// - Parameter imageSize: The input size to compute layer shapes at where the model leaves
    ///   height or width free (224 per free axis when `nil`).
    public init(model: Model, imageSize: (height: Int, width: Int)? = nil) {
        self.init(model: model, registry: .standard, imageSize: imageSize)
    }

    /// Inspects `model` against the ops `registry` builds.
    package init(model: Model, registry: OpRegistry, imageSize: (height: Int, width: Int)? = nil) {
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
        var layouts = LayerLayouts(model: model)
        if !unsupported.isEmpty {
            note = "shapes unavailable until the unsupported ops above are implemented"
        } else {
            do {
                let executor = try Executor(model: model, registry: registry)
                layouts = LayerLayouts(model: model, inputLayout: executor.imageLayout)
                let everything = graph.nodes.flatMap(\.outputs).filter { !$0.isEmpty }
                (shapes, image, probed) = try ModelInspection.shapesAtBatchOne(executor, tensors: everything, imageSize: imageSize)
            } catch {
                note = "shapes unavailable: \(error)"
            }
        }
        var classified: [String: (Kind, LayerLayout?)] = [:]
        func classify(_ tensor: String) -> (kind: Kind, layout: LayerLayout?) {
            if let known = classified[tensor] { return known }
            var result: (Kind, LayerLayout?) = (.unknown, nil)
            if let shape = shapes[tensor] {
                if shape.count == 3, shape[0] == 1, shape[1] > 1 {
                    result = (.tokens, .tokens(nil))
                } else if shape.count == 4 {
                    let layout = image.map {
                        LayerLayouts.layout(shape: shape, image: $0, graph: layouts.evidence(for: tensor), input: layouts.inputLayout)
                    } ?? .nchw
                    let kind = ModelInspection.kind(of: shape, layout: layout, image: image)
                    result = (kind, kind == .convolutional ? (layout == .nhwc ? .channelsLast : .channelsFirst) : nil)
                }
            }
            classified[tensor] = result
            return result
        }
        func kind(_ tensor: String) -> Kind { classify(tensor).kind }
        let constants = layouts.constants
        // Keep spatial and token outputs (everything when shapes are unknown); a norm1 counts only on tokens.
        var kept = blocks.filter { block in
            guard !shapes.isEmpty else { return true }
            let k = kind(block.tensor)
            let isNorm = block.paths.contains { $0.hasSuffix(".norm1") || $0.hasSuffix(".ln_1") }
            return isNorm ? k == .tokens : k != .unknown
        }
        func add(_ tensor: String) {
            guard !kept.contains(where: { $0.tensor == tensor }), let index = producer[tensor] else { return }
            kept.append((Array(ModuleScopes.paths(of: graph.nodes[index]).suffix(1)), tensor))
        }
        // Transformers: the last block's first norm by module path, else the tokens the last
        // attention projects (the same tensor, found from the graph). CNNs and channels-last
        // stages: the map the head pools, found from the graph.
        let tokens = kept.filter { kind($0.tensor) == .tokens }
        var pick: String?
        let head = graph.outputs.first.flatMap {
            ModelInspection.headFeature(of: graph, output: $0.name, producer: producer, constants: constants, kind: kind)
        }
        func attentionInput() -> String? {
            ModelInspection.lastAttentionInput(of: graph, producer: producer, constants: constants, rank: { shapes[$0]?.count }, kind: kind)
        }
        if !tokens.isEmpty {
            // A class-token model's last block output gets no gradient at its patch tokens: never fall back to it first.
            pick = tokens.last { $0.paths.contains { $0.hasSuffix(".norm1") || $0.hasSuffix(".ln_1") } }?.tensor ?? attentionInput() ?? tokens.last?.tensor
        } else if let head, kind(head) == .tokens {
            pick = attentionInput() ?? head
        } else {
            pick = head ?? kept.last { kind($0.tensor) == .convolutional }?.tensor
        }
        if let pick { add(pick) }
        kept.sort { (producer[$0.tensor] ?? 0) < (producer[$1.tensor] ?? 0) }
        candidates = kept.map { block in
            LayerCandidate(
                names: ModelInspection.names(for: block.tensor, paths: block.paths, resolver: resolver, graph: graph, producer: producer),
                tensor: block.tensor, shape: shapes[block.tensor], kind: kind(block.tensor), layout: classify(block.tensor).layout,
                recommended: block.tensor == pick)
        }
        probedImageSize = probed
        shapeNote = note
    }

    /// The feature the classifier head reads: going back from `output` through the graph's data
    /// (not weights, not shape computations), the nearest map of at least 2×2 that is not a
    /// pooling op's output or a transposed copy, or the nearest token sequence.
    static func headFeature(
        of graph: Graph, output: String, producer: [String: Int], constants: Set<String>, kind: (String) -> Kind
    ) -> String? {
        let pools: Set<String> = [
            "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "ReduceMean", "ReduceMax", "Transpose",
        ]
        var queue = [output]
        var seen: Set<String> = [output]
        var position = 0
        while position < queue.count {
            let tensor = queue[position]
            position += 1
            guard let index = producer[tensor] else { continue }
            let node = graph.nodes[index]
            switch kind(tensor) {
            case .tokens: return tensor
            case .convolutional where !pools.contains(node.opType): return tensor
            default: break
            }
            guard node.opType != "Shape", node.opType != "Size" else { continue }
            for input in node.inputs where !input.isEmpty && !constants.contains(input) && seen.insert(input).inserted {
                queue.append(input)
            }
        }
        return nil
    }

    /// The token sequence the last attention projects into queries, keys and values (a
    /// transformer's last block's first norm): going back from the last attention Softmax (over
    /// scores of rank 3 or more; a classifier's own Softmax is rank 2) or opset 23's Attention,
    /// the first tokens a MatMul or Gemm multiplies by a constant matrix, directly or after a
    /// reshape or transpose (torchvision's attention runs sequence-first).
    static func lastAttentionInput(
        of graph: Graph, producer: [String: Int], constants: Set<String>, rank: (String) -> Int?, kind: (String) -> Kind
    ) -> String? {
        let attention = graph.nodes.last { node in
            node.opType == "Attention" || (node.opType == "Softmax" && (node.inputs.first.flatMap(rank) ?? 0) >= 3)
        }
        guard let attention else { return nil }
        let relayouts: Set<String> = ["Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Cast"]
        func tokens(before tensor: String) -> String? {
            var current = tensor
            for _ in graph.nodes.indices where kind(current) != .tokens {  // bounded: a malformed graph may loop
                guard let index = producer[current], relayouts.contains(graph.nodes[index].opType),
                    let input = graph.nodes[index].inputs.first
                else { return nil }
                current = input
            }
            return kind(current) == .tokens ? current : nil
        }
        var queue = attention.inputs.filter { !$0.isEmpty && !constants.contains($0) }
        var seen = Set(queue)
        var position = 0
        while position < queue.count {
            guard let index = producer[queue[position]] else {
                position += 1
                continue
            }
            position += 1
            let node = graph.nodes[index]
            if node.opType == "MatMul" || node.opType == "Gemm", node.inputs.count >= 2, constants.contains(node.inputs[1]),
                let found = tokens(before: node.inputs[0])
            {
                return found
            }
            guard node.opType != "Shape", node.opType != "Size" else { continue }
            for input in node.inputs where !input.isEmpty && !constants.contains(input) && seen.insert(input).inserted {
                queue.append(input)
            }
        }
        return nil
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

    /// How a tensor of `shape` (at batch 1) read in `layout` serves as a CAM target: a map of
    /// `h, w ≥ 2` that fits in the input `image` (a pooled `[1, C, 1, 1]` gives a constant
    /// heatmap), or a `[1, tokens, C]` sequence.
    static func kind(of shape: [Int], layout: ImageLayout, image: (height: Int, width: Int)?) -> LayerCandidate.Kind {
        if shape.count == 3, shape[1] > 1 { return .tokens }
        guard let size = layout.spatialSize(of: shape), size.height >= 2, size.width >= 2 else { return .unknown }
        guard let image else { return .convolutional }
        return size.height <= image.height && size.width <= image.width ? .convolutional : .unknown
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
    /// input's image size when it is a 4-D image batch (in either layout), and that size again
    /// when the model left it free (free height and width take `imageSize`, else 224).
    static func shapesAtBatchOne(
        _ executor: Executor, tensors: [String], imageSize: (height: Int, width: Int)?
    ) throws -> (shapes: [String: [Int]], image: (height: Int, width: Int)?, probed: (height: Int, width: Int)?) {
        var image: (height: Int, width: Int)?
        var probed: (height: Int, width: Int)?
        let layout = executor.imageLayout
        if let dims = executor.inputs.first?.shape, dims.count == 4 {
            let requested = (
                height: dims[layout.heightAxis].fixedExtent ?? imageSize?.height ?? 224,
                width: dims[layout.widthAxis].fixedExtent ?? imageSize?.width ?? 224)
            image = try executor.imageSize(requested: imageSize ?? requested)
            if executor.fixedImageSize == nil { probed = image }
        }
        var feeds: [String: Tensor] = [:]
        for (position, input) in executor.inputs.enumerated() {
            guard let dims = input.shape, let dtype = input.elementType else {
                throw ExplainError.invalidInput("input '\(input.name)' has no declared type and shape")
            }
            let shape = try dims.enumerated().map { axis, dim -> Int in
                if let size = dim.fixedExtent { return size }
                if axis == 0 { return 1 }
                if position == 0, let image, axis == layout.heightAxis || axis == layout.widthAxis {
                    return axis == layout.heightAxis ? image.height : image.width
                }
                throw ExplainError.invalidInput("input '\(input.name)' has a free extent on axis \(axis)")
            }
            feeds[input.name] = try Tensor(zeros: dtype, shape: shape)
        }
        return (try executor.run(feeds, fetch: tensors).mapValues(\.shape), image, probed)
    }
}

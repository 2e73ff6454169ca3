import GraphEngine
import ONNXModel
import TensorCore

/// What `shortcut-detect inspect` reports about a model: interface, ops, and the layers a
/// GradCAM user would likely pick.
public struct ModelInspection {
    /// A module whose output is a sensible CAM target.
    public struct LayerCandidate {
        public enum Kind: String { case convolutional = "conv", tokens = "tokens", unknown = "?" }
        /// The PyTorch module path, e.g. `layer4.1` or `encoder.layers.encoder_layer_11`.
        public let modulePath: String
        /// The ONNX tensor holding the module's output.
        public let tensor: String
        /// The tensor's shape at batch 1, when it could be computed.
        public let shape: [Int]?
        public let kind: Kind
        /// Whether this is the layer we would pick first.
        public let recommended: Bool
    }

    public let model: Model
    /// Op types with how often each occurs, most frequent first.
    public let opHistogram: [(opType: String, count: Int)]
    /// Nodes whose op has no implementation.
    public let unsupported: [(node: String, opType: String)]
    /// Elements across all initializers.
    public let parameterCount: Int
    /// Block outputs, in execution order.
    public let candidates: [LayerCandidate]
    /// Shapes of all candidate tensors at batch 1, or why they could not be computed.
    public let shapeNote: String?

    public init(model: Model, registry: OpRegistry = .standard) {
        self.model = model
        let graph = model.graph
        var counts: [String: Int] = [:]
        for node in graph.nodes { counts[node.opType, default: 0] += 1 }
        opHistogram = counts.map { ($0.key, $0.value) }.sorted { ($1.count, $0.opType) < ($0.count, $1.opType) }
        unsupported = graph.nodes.filter { registry.builder(for: $0) == nil }.map { ($0.label, $0.opType) }
        parameterCount = graph.initializers.values.reduce(0) { $0 + $1.count }

        let modules = LayerResolver(model: model).modules
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
        var blocks: [(path: String, tensor: String)] = []
        for path in blockPaths.sorted(by: { (tensorOf[$0].flatMap { producer[$0] } ?? 0) < (tensorOf[$1].flatMap { producer[$0] } ?? 0) }) {
            guard let output = tensorOf[path] else { continue }
            // Nested modules that end at the same node share a tensor: list them once ("layer4 = layer4.1").
            if let existing = blocks.firstIndex(where: { $0.tensor == output }) {
                blocks[existing].path += " = " + path
            } else {
                blocks.append((path, output))
            }
        }

        var shapes: [String: [Int]] = [:]
        var note: String?
        do {
            let everything = graph.nodes.flatMap(\.outputs).filter { !$0.isEmpty }
            shapes = try ModelInspection.shapesAtBatchOne(model, tensors: everything, registry: registry)
        } catch {
            note = "shapes unavailable: \(error)"
        }
        func kind(_ tensor: String) -> LayerCandidate.Kind {
            guard let shape = shapes[tensor] else { return .unknown }
            if shape.count == 4, shape[2] * shape[3] > 1 { return .convolutional }
            if shape.count == 3, shape[1] > 1 { return .tokens }
            return .unknown
        }
        // In a CNN, the last spatial map before pooling is the classic GradCAM layer.
        let hasTokens = blocks.contains { kind($0.tensor) == .tokens }
        let pools: Set<String> = ["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean"]
        let finalMap = hasTokens ? nil : graph.nodes.indices.last { index in
            !pools.contains(graph.nodes[index].opType) && graph.nodes[index].outputs.first.map { kind($0) == .convolutional } == true
        }
        if let finalMap, let tensor = graph.nodes[finalMap].outputs.first, !blocks.contains(where: { $0.tensor == tensor }) {
            let path = ModuleScopes.paths(of: graph.nodes[finalMap]).last ?? "final feature map"
            blocks.append((path, tensor))
        }
        // Keep spatial and token outputs (everything when shapes are unknown); a norm1 counts only on tokens.
        let kept = blocks.filter { block in
            guard !shapes.isEmpty else { return true }
            let k = kind(block.tensor)
            let isNorm = block.path.hasSuffix(".norm1") || block.path.hasSuffix(".ln_1")
            return isNorm ? k == .tokens : k != .unknown
        }
        // Recommend the final spatial map for CNNs, the last block's first norm for transformers.
        let tokens = kept.filter { kind($0.tensor) == .tokens }
        let pick =
            tokens.isEmpty
            ? kept.last { kind($0.tensor) == .convolutional }?.tensor
            : (tokens.last { $0.path.hasSuffix(".norm1") || $0.path.hasSuffix(".ln_1") } ?? tokens.last)?.tensor
        candidates = kept.map { block in
            LayerCandidate(
                modulePath: block.path, tensor: block.tensor, shape: shapes[block.tensor], kind: kind(block.tensor),
                recommended: block.tensor == pick)
        }
        shapeNote = note
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

    /// Runs the model once on zeros at batch 1 and returns the shapes of `tensors`.
    static func shapesAtBatchOne(_ model: Model, tensors: [String], registry: OpRegistry) throws -> [String: [Int]] {
        let executor = try Executor(model: model, registry: registry)
        var feeds: [String: Tensor] = [:]
        for input in executor.inputs {
            guard let dims = input.shape, let dtype = input.elementType else {
                throw OpError("input '\(input.name)' has no declared type and shape")
            }
            let shape = try dims.enumerated().map { axis, dim -> Int in
                if case .fixed(let size) = dim { return size }
                if axis == 0 { return 1 }
                throw OpError("input '\(input.name)' has a free extent on axis \(axis)")
            }
            feeds[input.name] = try Tensor(zeros: dtype, shape: shape)
        }
        return try executor.run(feeds, fetch: tensors).mapValues(\.shape)
    }
}

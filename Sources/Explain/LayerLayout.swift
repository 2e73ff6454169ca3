import Foundation
import GraphEngine
import ONNXModel
import TensorCore

/// How a target layer's tensor holds its channels and positions. CAM methods read every layer
/// as `[N, C, h, w]`; the other layouts are rearranged first, as pytorch-grad-cam's
/// `reshape_transform` does.
public enum LayerLayout: Sendable, Equatable, CustomStringConvertible {
    /// `[N, C, h, w]`: convolutional maps.
    case channelsFirst
    /// `[N, h, w, C]`: Keras (tf2onnx) maps, Swin-style stages, LayerNorm over the last axis.
    case channelsLast
    /// `[N, tokens, C]`: a transformer's token sequence, laid on `grid` (inferred from the token
    /// count and the input size when `nil`).
    case tokens(TokenGrid?)

    /// `nchw`, `nhwc` or `tokens`, with the grid when one is given.
    public var description: String {
        switch self {
        case .channelsFirst: "nchw"
        case .channelsLast: "nhwc"
        case .tokens(let grid): grid.map { "tokens (\($0))" } ?? "tokens"
        }
    }

    /// A layout by its command-line name: `nchw`, `nhwc` or `tokens`.
    public init?(name: String) {
        switch name.lowercased() {
        case "nchw": self = .channelsFirst
        case "nhwc": self = .channelsLast
        case "tokens": self = .tokens(nil)
        default: return nil
        }
    }

    /// `x` as `[N, C, h, w]`, for an input of `height` x `width` (which sizes an inferred token grid).
    package func channelsFirst(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
        switch self {
        case .channelsFirst, .channelsLast:
            guard x.rank == 4 else {
                throw ExplainError.invalidInput("a \(self) layer must be 4-D, got shape \(x.shape); choose another layer layout")
            }
            return self == .channelsFirst ? x : try x.transposed(ImageLayout.nhwc.toChannelsFirst)
        case .tokens(let grid):
            guard x.rank == 3 else { throw ExplainError.invalidInput("a token layer must be [N, tokens, C], got shape \(x.shape)") }
            return try (grid ?? TokenGrid.infer(tokens: x.shape[1], inputHeight: height, inputWidth: width)).spatial(x)
        }
    }
}

/// Decides the ``LayerLayout`` of a model's tensors from the graph around them and their shape.
///
/// The graph decides when it can: ops that only read `[N, C, H, W]` (Conv, BatchNormalization,
/// pooling, …), a LayerNormalization or a Linear (MatMul by a constant matrix) over the last
/// axis, a mean over axes 1 and 2 (Keras's global pooling) or 2 and 3; failing those, the
/// NCHW↔NHWC Transposes exporters put around convolutions (weaker: `[0, 3, 1, 2]` also turns
/// an NCHW map into a sequence of columns). Layout-preserving elementwise ops pass the evidence
/// on; the nearest evidence wins, and a tie between both layouts counts as none.
///
/// Otherwise the shape decides: the reading whose height and width fit inside the input and
/// match its aspect ratio best (`[N, 7, 7, 768]` under a 224×224 input is channels-last). A
/// shape that fits both equally well follows the input's own layout.
package struct LayerLayouts: Sendable {
    /// How the model's input orders its axes.
    package let inputLayout: ImageLayout
    private let nodes: [Node]
    private let producer: [String: Int]
    private let consumers: [String: [Int]]
    /// Initializers, `Constant` outputs and what is computed from them alone.
    let constants: Set<String>
    private let constantValues: [String: Tensor]

    /// How far evidence is looked for, in elementwise ops from the tensor.
    static let searchDepth = 8

    package init(model: Model, inputLayout: ImageLayout? = nil) {
        let graph = model.graph
        self.inputLayout = inputLayout ?? ImageLayout.declared(by: graph.inputs.first?.shape ?? [])
        nodes = graph.nodes
        var producer: [String: Int] = [:]
        var consumers: [String: [Int]] = [:]
        var constants = Set(graph.initializers.keys)
        var values = graph.initializers
        for (index, node) in graph.nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producer[output] = index }
            for input in Set(node.inputs) where !input.isEmpty { consumers[input, default: []].append(index) }
            if let value = try? node.constantValue(), let output = node.outputs.first {
                values[output] = value
                constants.insert(output)
            } else if !node.inputs.filter({ !$0.isEmpty }).isEmpty, node.inputs.allSatisfy({ $0.isEmpty || constants.contains($0) }) {
                // Computed from constants only (a transposed weight, a cast scale): still a constant.
                constants.formUnion(node.outputs.filter { !$0.isEmpty })
            }
        }
        self.producer = producer
        self.consumers = consumers
        self.constants = constants
        constantValues = values
    }

    /// The layout to read `tensor` in, given its `shape` and the input image's size.
    package func layout(of tensor: String, shape: [Int], image: (height: Int, width: Int)) throws -> LayerLayout {
        switch shape.count {
        case 3: return .tokens(nil)
        case 4: return Self.layout(shape: shape, image: image, graph: evidence(for: tensor), input: inputLayout) == .nhwc ? .channelsLast : .channelsFirst
        default:
            throw ExplainError.invalidInput("tensor '\(tensor)' has shape \(shape); CAM needs [N, C, h, w] or [N, h, w, C] maps or [N, tokens, C] tokens")
        }
    }

    /// The layout of a 4-D `shape`: the graph's evidence unless the shape rules it out, else the
    /// shape's better reading, else the input's layout.
    static func layout(shape: [Int], image: (height: Int, width: Int), graph: ImageLayout?, input: ImageLayout) -> ImageLayout {
        func fits(_ layout: ImageLayout) -> Bool {
            guard let size = layout.spatialSize(of: shape) else { return false }
            return size.height <= image.height && size.width <= image.width
        }
        func aspectMismatch(_ layout: ImageLayout) -> Double {
            guard let size = layout.spatialSize(of: shape), size.height > 0, size.width > 0, image.height > 0, image.width > 0
            else { return .infinity }
            return abs(log(Double(size.height) * Double(image.width) / (Double(size.width) * Double(image.height))))
        }
        let other: (ImageLayout) -> ImageLayout = { $0 == .nchw ? .nhwc : .nchw }
        if let graph, fits(graph) || !fits(other(graph)) { return graph }
        switch (fits(.nchw), fits(.nhwc)) {
        case (true, false): return .nchw
        case (false, true): return .nhwc
        default:
            let (first, last) = (aspectMismatch(.nchw), aspectMismatch(.nhwc))
            return first == last ? input : (first < last ? .nchw : .nhwc)
        }
    }

    /// What the graph says about `tensor`'s layout: the nearest strong evidence through
    /// layout-preserving ops, else the nearest Transpose; `nil` when there is none or the
    /// nearest disagrees.
    package func evidence(for tensor: String) -> ImageLayout? {
        var strong: Set<ImageLayout>?
        var weak: Set<ImageLayout>?
        var frontier = [tensor]
        var seen: Set<String> = [tensor]
        for _ in 0...Self.searchDepth where strong == nil && !frontier.isEmpty {
            var found: (strong: Set<ImageLayout>, weak: Set<ImageLayout>) = ([], [])
            var next: [String] = []
            for name in frontier {
                for index in ([producer[name]].compactMap { $0 } + (consumers[name] ?? [])) {
                    let node = nodes[index]
                    if let layout = says(node, about: name) {
                        if node.opType == "Transpose" { found.weak.insert(layout) } else { found.strong.insert(layout) }
                    }
                    guard Self.preservesLayout.contains(node.opType) else { continue }
                    for neighbour in layoutInputs(of: node) + node.outputs.prefix(1) where !neighbour.isEmpty && seen.insert(neighbour).inserted {
                        next.append(neighbour)
                    }
                }
            }
            if !found.strong.isEmpty { strong = found.strong }
            if weak == nil, !found.weak.isEmpty { weak = found.weak }
            frontier = next
        }
        guard let nearest = strong ?? weak, nearest.count == 1 else { return nil }
        return nearest.first
    }

    /// Elementwise ops whose output has their (full-size) inputs' layout.
    static let preservesLayout: Set<String> = [
        "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "HardSwish", "Swish",
        "Tanh", "Erf", "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Shrink", "Clip", "Identity", "Dropout", "Cast",
        "Neg", "Abs", "Sqrt", "Exp", "Log", "Reciprocal", "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean",
        "Where", "QuantizeLinear", "DequantizeLinear",
    ]

    /// Ops that read and write `[N, C, H, W]` in their first input and output.
    static let channelsFirstOps: Set<String> = [
        "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "BatchNormalization", "InstanceNormalization",
        "GroupNormalization", "LRN", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
        "GlobalLpPool", "DepthToSpace", "SpaceToDepth", "MaxRoiPool", "RoiAlign", "MaxUnpool",
    ]

    /// The inputs of an elementwise node that carry the data (not weights, not scalars).
    private func layoutInputs(of node: Node) -> [String] {
        let data: [String]
        switch node.opType {
        case "Where": data = Array(node.inputs.dropFirst())
        case "Pow", "Clip", "PRelu", "QuantizeLinear", "DequantizeLinear", "HardSigmoid", "LeakyRelu": data = Array(node.inputs.prefix(1))
        default: data = node.inputs
        }
        return data.filter { !$0.isEmpty && !constants.contains($0) }
    }

    /// The layout `node` implies for `tensor`, one of its inputs or outputs.
    private func says(_ node: Node, about tensor: String) -> ImageLayout? {
        let isInput = node.inputs.first == tensor
        let isOutput = node.outputs.first == tensor
        guard isInput || isOutput, node.domain.isEmpty || node.domain == "ai.onnx" else { return nil }
        switch node.opType {
        case _ where Self.channelsFirstOps.contains(node.opType):
            return .nchw
        case "Transpose":
            let perm = try? node.attribute("perm", as: [Int].self)
            if perm == [0, 2, 3, 1] { return isInput ? .nchw : .nhwc }
            if perm == [0, 3, 1, 2] { return isInput ? .nhwc : .nchw }
            return nil
        case "LayerNormalization":
            let axis = (try? node.attribute("axis", default: -1)) ?? -1
            return axis == -1 || axis == 3 ? .nhwc : nil
        case "MatMul":
            // A Linear on a 4-D map contracts its last axis: the channels.
            guard let weight = node.inputs.dropFirst().first, constants.contains(weight), constantValues[weight].map({ $0.rank == 2 }) ?? true
            else { return nil }
            return .nhwc
        case "ReduceMean", "ReduceSum", "ReduceMax":
            guard isInput, let axes = reducedAxes(node) else { return nil }
            switch axes {
            case [1, 2], [-3, -2]: return .nhwc
            case [2, 3], [-2, -1], [1], [-3]: return .nchw
            case [3], [-1]: return node.opType == "ReduceMean" ? .nhwc : nil  // a LayerNorm written out
            default: return nil
            }
        default:
            return nil
        }
    }

    /// A reduction's axes, sorted, from its attribute (before opset 18) or constant second input.
    private func reducedAxes(_ node: Node) -> [Int]? {
        if let axes = try? node.attribute("axes", as: [Int].self) { return axes.sorted() }
        guard let name = node.inputs.dropFirst().first, !name.isEmpty, let value = constantValues[name] else { return nil }
        return (try? value.integers())?.sorted()
    }
}

extension LayerLayouts {
    /// `x`, the value of `tensor`, as `[N, C, h, w]` when it is a 4-D map (so that averaging
    /// its last two axes pools positions); other ranks unchanged. `layout` overrides the inferred one.
    package func channelsFirstMap(
        _ x: Tensor, of tensor: String, image: (height: Int, width: Int), layout: LayerLayout? = nil
    ) throws -> Tensor {
        guard x.rank == 4 else { return x }
        let chosen = try layout ?? self.layout(of: tensor, shape: x.shape, image: image)
        return chosen == .channelsLast ? try x.transposed(ImageLayout.nhwc.toChannelsFirst) : x
    }
}

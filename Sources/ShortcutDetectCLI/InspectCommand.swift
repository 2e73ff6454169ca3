import ArgumentParser
import Foundation
import ShortcutDetect

/// `shortcut-detect inspect`: what a model takes, returns and contains, and where to point GradCAM.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model: inputs, outputs, opsets, ops, and likely GradCAM layers.",
        discussion: """
            --json prints one object instead: producer, ir_version, opsets, parameters, inputs and outputs \
            (name, type, shape: an extent, an axis name or null per axis), nodes, ops (op, count), \
            unsupported (op, count, nodes), layers (names, tensor, shape at batch 1, kind, layout, \
            suggested), suggested (the layer the other commands explain without --layer), probed_size and \
            note; with --layers, modules (path, tensor); with --all-tensors, tensors (name, op).
            """)

    @Argument(help: "The .onnx model file.")
    var model: String

    @Flag(help: "Also list every tensor name that `run --tap` accepts.")
    var allTensors = false

    @Flag(help: "Also list every PyTorch module path that `gradcam --layer` accepts, with its output tensor.")
    var layers = false

    @Option(help: ArgumentHelp("Image size to compute layer shapes at when the model leaves it free (default 224x224).", valueName: "HxW"))
    var size: ImageSize?

    @OptionGroup var result: JSONOption

    @OptionGroup var resources: ResourceOptions

    @OptionGroup var console: ConsoleOptions

    func run() throws {
        let loaded = try loadModel(model)
        let report = Console.timed("inspected the graph") {
            ModelInspection(model: loaded, imageSize: size.map { ($0.height, $0.width) })
        }
        let modules = layers ? LayerResolver(model: loaded).modules : nil
        if result.json {
            return try Console.json(InspectionJSON(report, modules: modules, allTensors: allTensors))
        }
        var text = InspectCommand.render(report, allTensors: allTensors)
        if let modules {
            text += "\nlayers (module path -> output tensor):"
            if modules.isEmpty { text += "\n  none: the exporter recorded no module scopes; name layers by tensor" }
            for module in modules { text += "\n  \(module.path) -> \(module.tensor)" }
        }
        Console.say(text)
    }

    static func render(_ report: ModelInspection, allTensors: Bool) -> String {
        let model = report.model
        var lines: [String] = []
        let opsets = model.opsets.sorted { $0.key < $1.key }.map { "\($0.key.isEmpty ? "ai.onnx" : $0.key) \($0.value)" }
        lines.append("model: \(model.producer.isEmpty ? "unknown producer" : model.producer), IR \(model.irVersion), opset \(opsets.joined(separator: ", "))")
        lines.append("parameters: \(report.parameterCount)")
        func describe(_ value: ValueInfo) -> String {
            let type = value.elementType?.description ?? "type \(value.elementTypeCode)"
            let shape = value.shape.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "[unknown shape]"
            return "  \(value.name): \(type) \(shape)"
        }
        lines.append("inputs:")
        lines += model.graph.inputs.map(describe)
        lines.append("outputs:")
        lines += model.graph.outputs.map(describe)
        lines.append("ops (\(model.graph.nodes.count) nodes):")
        lines.append("  " + report.opHistogram.map { "\($0.opType) \($0.count)" }.joined(separator: ", "))
        lines.append("unsupported ops: " + (report.unsupported.isEmpty ? "none" : MissingOperator.summary(report.unsupported)))
        let probe = report.probedImageSize.map { ", \($0.height)x\($0.width) input" } ?? ""
        lines.append("likely GradCAM layers (--layer name -> tensor, shape at batch 1\(probe)):")
        if report.candidates.isEmpty { lines.append("  none found") }
        for candidate in report.candidates {
            let shape = candidate.shape.map { "\($0)" } ?? "?"
            let mark = candidate.recommended ? "  <- suggested" : ""
            let layout = candidate.layout == .channelsLast ? ", nhwc" : ""
            lines.append("  \(candidate.names.joined(separator: " = ")) -> \(candidate.tensor) \(shape) [\(candidate.kind.rawValue)\(layout)]\(mark)")
        }
        if let note = report.shapeNote { lines.append("  (\(note))") }
        if allTensors {
            lines.append("tensors:")
            for node in model.graph.nodes { for output in node.outputs where !output.isEmpty { lines.append("  \(output)  (\(node.opType))") } }
        }
        return lines.joined(separator: "\n")
    }
}

/// `inspect --json`: what `render` prints, as one object.
struct InspectionJSON: Encodable {
    struct Value: Encodable {
        let name: String
        /// The element type (`float32`), or `type N` for one we do not support.
        let type: String
        /// Per axis: its extent, its name when free, or null when the exporter left it blank; null
        /// when no shape was recorded.
        let shape: [Axis]?
    }

    enum Axis: Encodable {
        case fixed(Int), named(String), blank

        func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .fixed(let extent): try container.encode(extent)
            case .named(let name): try container.encode(name)
            case .blank: try container.encodeNil()
            }
        }
    }

    struct OpCount: Encodable {
        let op: String
        let count: Int
    }

    struct Unsupported: Encodable {
        let op: String
        let count: Int
        let nodes: [String]
    }

    struct Layer: Encodable {
        /// The names `--layer` accepts for it (a module path first, when there is one).
        let names: [String]
        let tensor: String
        /// At batch 1 and `probed_size`; absent when it could not be computed.
        let shape: [Int]?
        let kind: String
        /// `nchw`, `nhwc` or `tokens`; absent when undecided.
        let layout: String?
        let suggested: Bool
    }

    struct Module: Encodable {
        let path: String
        let tensor: String
    }

    struct NamedTensor: Encodable {
        let name: String
        let op: String
    }

    let producer: String
    let irVersion: Int
    let opsets: [String: Int]
    let parameters: Int
    let inputs: [Value]
    let outputs: [Value]
    let nodes: Int
    let ops: [OpCount]
    let unsupported: [Unsupported]
    let layers: [Layer]
    /// The layer `gradcam`, `audit`, `embed` and `compare-heads` explain without `--layer`.
    let suggested: Layer?
    /// `[height, width]` of the input the layer shapes were computed at.
    let probedSize: [Int]?
    let note: String?
    /// With `--layers`: every module path and its output tensor.
    let modules: [Module]?
    /// With `--all-tensors`: every tensor a node computes.
    let tensors: [NamedTensor]?

    init(_ report: ModelInspection, modules: [(path: String, tensor: String)]?, allTensors: Bool) {
        let model = report.model
        func value(_ info: ValueInfo) -> Value {
            Value(
                name: info.name, type: info.elementType?.description ?? "type \(info.elementTypeCode)",
                shape: info.shape?.map { axis in
                    switch axis {
                    case .fixed(let extent): .fixed(extent)
                    case .symbolic(let name): .named(name)
                    case .unknown: .blank
                    }
                })
        }
        func layer(_ candidate: ModelInspection.LayerCandidate) -> Layer {
            Layer(
                names: candidate.names, tensor: candidate.tensor, shape: candidate.shape, kind: candidate.kind.rawValue,
                layout: candidate.layout.map { if case .tokens = $0 { "tokens" } else { $0.description } },
                suggested: candidate.recommended)
        }
        producer = model.producer
        irVersion = model.irVersion
        opsets = Dictionary(model.opsets.map { ($0.key.isEmpty ? "ai.onnx" : $0.key, $0.value) }, uniquingKeysWith: max)
        parameters = report.parameterCount
        inputs = model.graph.inputs.map(value)
        outputs = model.graph.outputs.map(value)
        nodes = model.graph.nodes.count
        ops = report.opHistogram.map { OpCount(op: $0.opType, count: $0.count) }
        unsupported = report.unsupported.map { Unsupported(op: $0.opType, count: $0.count, nodes: $0.nodes) }
        layers = report.candidates.map(layer)
        suggested = report.suggested.map(layer)
        probedSize = report.probedImageSize.map { [$0.height, $0.width] }
        note = report.shapeNote
        self.modules = modules?.map { Module(path: $0.path, tensor: $0.tensor) }
        tensors = allTensors
            ? model.graph.nodes.flatMap { node in node.outputs.filter { !$0.isEmpty }.map { NamedTensor(name: $0, op: node.opType) } }
            : nil
    }
}

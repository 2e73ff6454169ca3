import ArgumentParser
import Foundation
import ShortcutDetect

/// `shortcut-detect inspect`: what a model takes, returns and contains, and where to point GradCAM.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a model: inputs, outputs, opsets, ops, and likely GradCAM layers.")

    @Argument(help: "The .onnx model file.")
    var model: String

    @Flag(help: "Also list every tensor name that `run --tap` accepts.")
    var allTensors = false

    @Flag(help: "Also list every PyTorch module path that `gradcam --layer` accepts, with its output tensor.")
    var layers = false

    @Option(help: ArgumentHelp("Image size to compute layer shapes at when the model leaves it free (default 224x224).", valueName: "HxW"))
    var size: ImageSize?

    @OptionGroup var resources: ResourceOptions

    func run() throws {
        let loaded = try Model(contentsOf: URL(fileURLWithPath: model))
        let report = ModelInspection(model: loaded, imageSize: size.map { ($0.height, $0.width) })
        print(InspectCommand.render(report, allTensors: allTensors))
        if layers {
            print("layers (module path -> output tensor):")
            let modules = LayerResolver(model: loaded).modules
            if modules.isEmpty { print("  none: the exporter recorded no module scopes; name layers by tensor") }
            for module in modules { print("  \(module.path) -> \(module.tensor)") }
        }
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

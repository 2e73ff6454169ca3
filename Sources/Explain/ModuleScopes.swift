import Foundation
import ONNXModel

/// The PyTorch module path a node came from, recovered from what each exporter records.
///
/// The TorchScript exporter writes scopes into node names (`/layer4/layer4.1/relu_1/Relu`); the
/// dynamo exporter writes plain names and lists the cumulative module paths in the node's
/// `pkg.torch.onnx.name_scopes` metadata (`['', 'layer4', 'layer4.1', 'layer4.1.relu', 'relu_8']`).
package enum ModuleScopes {
    /// The metadata key the dynamo exporter uses.
    package static let metadataKey = "pkg.torch.onnx.name_scopes"

    /// The module paths enclosing `node`, outermost first (e.g. `["layer4", "layer4.1", "layer4.1.relu"]`);
    /// empty when the exporter recorded none.
    package static func paths(of node: Node) -> [String] {
        if let scopes = node.metadata[metadataKey] { return dynamoPaths(scopes) }
        return torchScriptPaths(node.name)
    }

    /// Parses the dynamo exporter's Python list literal; the last entry names the op, not a module.
    static func dynamoPaths(_ literal: String) -> [String] {
        let trimmed = literal.trimmingCharacters(in: ["[", "]", " "])
        let items = trimmed.split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["'", "\""])
        }
        return items.dropLast().filter { !$0.isEmpty }
    }

    /// Rebuilds dotted paths from a TorchScript node name. A component that extends its parent's
    /// name (`layer4` then `layer4.1`) is a `Sequential`/`ModuleList` child and replaces it.
    static func torchScriptPaths(_ name: String) -> [String] {
        guard name.hasPrefix("/") else { return [] }
        let components = name.split(separator: "/").dropLast().map(String.init)
        var paths: [String] = []
        var segments: [String] = []
        for component in components {
            if let last = segments.last, component.hasPrefix(last + ".") {
                segments[segments.count - 1] = component
            } else {
                segments.append(component)
            }
            paths.append(segments.joined(separator: "."))
        }
        return paths
    }
}

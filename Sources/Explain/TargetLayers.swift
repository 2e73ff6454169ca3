import Foundation
import GraphEngine
import ONNXModel

/// A layer resolved to the tensor its CAM reads.
public struct ResolvedLayer: Sendable, Equatable {
    /// What the user asked for.
    public let request: String
    /// The ONNX tensor holding the layer's output.
    public let tensor: String
    /// The PyTorch module path, when the layer was named by one.
    public let modulePath: String?
}

/// Errors in naming a target layer.
public enum LayerError: Error, CustomStringConvertible, Equatable {
    /// No layer has the name; the closest module paths follow.
    case unknown(String, candidates: [String])
    /// The name fits several layers.
    case ambiguous(String, matches: [String])

    /// The problem in words, with the candidates.
    public var description: String {
        switch self {
        case .unknown(let name, let candidates):
            let hint = candidates.isEmpty ? "" : "; closest: \(candidates.joined(separator: ", "))"
            return "no layer named '\(name)'\(hint)"
        case .ambiguous(let name, let matches):
            return "layer '\(name)' is ambiguous; it could be \(matches.prefix(8).joined(separator: ", "))\(matches.count > 8 ? ", ..." : "")"
        }
    }
}

/// Finds the tensor behind a layer name: an ONNX tensor name, a node name, or the PyTorch module
/// path a user knows (`layer4`, `layer4.1`, `features.30`, `blocks.11.norm1`), with Python-style
/// indexing of numbered children (`layer4[-1]`, `blocks[-1].norm1`, `encoder.layers[-1].ln_1`).
///
/// A module's output is the first output of the last node (in graph order) inside its scope;
/// scopes come from TorchScript node names or the dynamo exporter's `name_scopes` metadata.
public struct LayerResolver: Sendable {
    /// Module paths in order of first appearance, each with the tensor that is its output.
    public let modules: [(path: String, tensor: String)]
    private let tensors: Set<String>
    private let nodeOutputs: [String: String]
    private let moduleTensor: [String: String]

    /// Reads the module paths of `model`'s nodes.
    public init(model: Model) {
        var last: [String: Int] = [:]
        var order: [String] = []
        var nodeOutputs: [String: String] = [:]
        var tensors = Set(model.graph.inputs.map(\.name))
        for (index, node) in model.graph.nodes.enumerated() {
            tensors.formUnion(node.outputs.filter { !$0.isEmpty })
            if !node.name.isEmpty, let output = node.outputs.first { nodeOutputs[node.name] = output }
            for path in ModuleScopes.paths(of: node) {
                if last[path] == nil { order.append(path) }
                last[path] = index
            }
        }
        let modules = order.compactMap { path -> (String, String)? in
            guard let index = last[path], let output = model.graph.nodes[index].outputs.first, !output.isEmpty else { return nil }
            return (path, output)
        }
        self.modules = modules
        self.tensors = tensors
        self.nodeOutputs = nodeOutputs
        self.moduleTensor = Dictionary(modules.map { ($0.0, $0.1) }, uniquingKeysWith: { first, _ in first })
    }

    /// Resolves one layer name.
    public func resolve(_ request: String) throws -> ResolvedLayer {
        let name = request.hasPrefix("model.") ? String(request.dropFirst(6)) : request
        if tensors.contains(request) { return ResolvedLayer(request: request, tensor: request, modulePath: nil) }
        if let output = nodeOutputs[request] { return ResolvedLayer(request: request, tensor: output, modulePath: nil) }
        let path = try expandIndices(name)
        if let tensor = moduleTensor[path] { return ResolvedLayer(request: request, tensor: tensor, modulePath: path) }
        // A unique suffix of a module path ("layer4.1.conv2" for "conv2" only when unique).
        let matches = modules.map(\.path).filter { $0.hasSuffix("." + path) }
        if matches.count == 1, let tensor = moduleTensor[matches[0]] {
            return ResolvedLayer(request: request, tensor: tensor, modulePath: matches[0])
        }
        if matches.count > 1 { throw LayerError.ambiguous(request, matches: matches) }
        throw LayerError.unknown(request, candidates: closest(to: path))
    }

    /// Rewrites `a.b[-1].c` into `a.b.<last numbered child>.c`, children in order of appearance.
    func expandIndices(_ name: String) throws -> String {
        guard name.contains("[") else { return name }
        var resolved = ""
        var rest = Substring(name)
        while let open = rest.firstIndex(of: "[") {
            guard let close = rest[open...].firstIndex(of: "]"), let index = Int(rest[rest.index(after: open)..<close]) else {
                throw LayerError.unknown(name, candidates: [])
            }
            resolved += rest[..<open]
            let children = self.children(of: resolved)
            let position = index < 0 ? children.count + index : index
            guard position >= 0, position < children.count else {
                throw LayerError.unknown(name, candidates: children.suffix(5).map { $0 })
            }
            resolved = children[position]
            rest = rest[rest.index(after: close)...]
        }
        return resolved + rest
    }

    /// Direct child module paths of `parent`, in order of first appearance.
    package func children(of parent: String) -> [String] {
        let depth = parent.split(separator: ".").count + 1
        return modules.map(\.path).filter { $0.hasPrefix(parent + ".") && $0.split(separator: ".").count == depth }
    }

    /// Similar module paths, or the top-level modules when nothing is similar.
    private func closest(to name: String) -> [String] {
        let similar = Executor.closest(to: name, in: modules.map(\.path))
        return similar.isEmpty ? modules.map(\.path).filter { !$0.contains(".") } : similar
    }
}

import ONNXModel
import TensorCore

/// Errors raised while preparing or running a graph.
public enum GraphError: Error, CustomStringConvertible {
    /// Op types (or domains) with no implementation: every one the graph uses, most used first.
    case unsupportedOperators([MissingOperator])
    /// Structural problems: undefined inputs, duplicate outputs, cycles. All of them are listed.
    case invalidGraph([String])
    /// The model does not import the default ONNX operator set.
    case missingOpset
    /// A feed names no graph input, or a graph input has no feed.
    case inputMismatch(String)
    /// A fed tensor does not fit the declared type or shape of its input.
    case wrongInput(name: String, reason: String)
    /// A requested tensor name does not exist in the graph.
    case unknownTensor(name: String, suggestions: [String])
    /// A node failed while running.
    case nodeFailed(node: String, reason: String)

    /// The problem in words, naming the tensors, nodes or op types involved.
    public var description: String {
        switch self {
        case .unsupportedOperators(let missing):
            return "unsupported ops: " + MissingOperator.summary(missing)
        case .invalidGraph(let problems):
            return "the graph is invalid:\n" + problems.map { "  \($0)" }.joined(separator: "\n")
        case .missingOpset:
            return "the model does not import the default ONNX operator set (opset_import has no '' or 'ai.onnx' entry)"
        case .inputMismatch(let reason): return reason
        case .wrongInput(let name, let reason): return "input '\(name)': \(reason)"
        case .unknownTensor(let name, let suggestions):
            let hint = suggestions.isEmpty ? "" : "; did you mean \(suggestions.map { "'\($0)'" }.joined(separator: ", "))?"
            return "no tensor named '\(name)' in the graph\(hint)"
        case .nodeFailed(let node, let reason): return "\(node) failed: \(reason)"
        }
    }
}

/// An op type a registry lacks, with the nodes of a graph that use it.
public struct MissingOperator: Sendable, Equatable {
    /// The op type, prefixed by its domain outside the default one (`com.microsoft.FusedGelu`).
    public let opType: String
    /// The nodes using it, in graph order: their names, or `producing 'y'` for unnamed ones.
    public let nodes: [String]

    /// How many nodes use the op type.
    public var count: Int { nodes.count }

    /// Nodes whose op `registry` cannot build, one entry per op type, most used first (ties by name).
    package static func find(in nodes: [Node], registry: OpRegistry) -> [MissingOperator] {
        var byType: [String: [String]] = [:]
        for node in nodes where registry.builder(for: node) == nil {
            let type = node.domain.isEmpty ? node.opType : node.domain + "." + node.opType
            let name = !node.name.isEmpty ? node.name : node.outputs.first.map { "producing '\($0)'" } ?? "unnamed"
            byType[type, default: []].append(name)
        }
        return byType.map { MissingOperator(opType: $0.key, nodes: $0.value) }
            .sorted { ($1.count, $0.opType) < ($0.count, $1.opType) }
    }

    /// `LSTM ×2 (/rnn/LSTM, /rnn/LSTM_1), Foo ×17 (/a/Foo, /b/Foo, /c/Foo, …)`: each op once, with
    /// its count and first three nodes.
    public static func summary(_ missing: [MissingOperator]) -> String {
        missing.map { op in
            let shown = op.nodes.prefix(3).joined(separator: ", ")
            return "\(op.opType) ×\(op.count) (\(shown)\(op.count > 3 ? ", …" : ""))"
        }.joined(separator: ", ")
    }
}

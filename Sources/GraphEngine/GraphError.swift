import ONNXModel
import TensorCore

/// Errors raised while preparing or running a graph.
public enum GraphError: Error, CustomStringConvertible {
    /// Nodes whose op type (or domain) has no implementation, all of them.
    case unsupportedOperators([(node: String, opType: String)])
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

    public var description: String {
        switch self {
        case .unsupportedOperators(let list):
            let ops = Set(list.map(\.opType)).sorted()
            let nodes = list.map { "  \($0.node)" }.joined(separator: "\n")
            return "the model uses \(list.count) node(s) with unsupported operators (\(ops.joined(separator: ", "))):\n\(nodes)"
        case .invalidGraph(let problems):
            return "the graph is invalid:\n" + problems.map { "  \($0)" }.joined(separator: "\n")
        case .missingOpset:
            return "the model does not import the default ONNX operator set (opset_import has no '' or 'ai.onnx' entry)"
        case .inputMismatch(let reason): return reason
        case .wrongInput(let name, let reason): return "input '\(name)': \(reason)"
        case .unknownTensor(let name, let suggestions):
            let hint = suggestions.isEmpty ? "" : "; did you mean \(suggestions.map { "'\($0)'" }.joined(separator: ", "))?"
            return "no tensor named '\(name)' in the graph\(hint) (`shortcut-detect inspect` lists them)"
        case .nodeFailed(let node, let reason): return "\(node) failed: \(reason)"
        }
    }
}

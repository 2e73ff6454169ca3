import ONNXModel
import TensorCore

extension Executor {
    /// What `output` holds: `.probabilities` when the graph computes it with a Softmax (through
    /// ops that only move or relabel values: Identity, Reshape, Flatten, Squeeze, Unsqueeze,
    /// Cast), otherwise `.auto` (each row is checked; see ``OutputKind``).
    ///
    /// A LogSoftmax output stays `.auto`: its rows are log-probabilities, and their softmax is
    /// the distribution itself.
    public func outputKind(of output: String) -> OutputKind {
        var producers: [String: Node] = [:]
        for node in model.graph.nodes { for name in node.outputs where !name.isEmpty { producers[name] = node } }
        var name = output
        var seen = Set<String>()
        while let node = producers[name], seen.insert(name).inserted {
            switch node.opType {
            case "Softmax": return node.domain.isEmpty ? .probabilities : .auto
            case "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast":
                guard let source = node.inputs.first, !source.isEmpty else { return .auto }
                name = source
            default: return .auto
            }
        }
        return .auto
    }

    /// Class probabilities of a batch: runs the model on `inputs` (fed to the first input) and
    /// reads the `[N, classes]` output `output` as `kind` says (``outputKind(of:)`` when `nil`).
    public func classProbabilities(_ inputs: Tensor, output: String, kind: OutputKind? = nil) throws -> [[Double]] {
        guard let input = self.inputs.first?.name else { throw GraphError.inputMismatch("the model has no inputs") }
        guard let values = try run([input: inputs], fetch: [output])[output], values.rank == 2 else {
            throw GraphError.inputMismatch("the model's output \(output) is not [batch, classes]")
        }
        return ClassProbabilities.rows(try values.doubles(), width: values.shape[1], kind: kind ?? outputKind(of: output))
    }
}

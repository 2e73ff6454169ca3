import TensorCore

/// A decoded ONNX model: its graph, the operator sets it was written against, and its metadata.
public struct Model: Sendable {
    /// The ONNX IR version the file declares.
    public var irVersion: Int
    /// Operator-set version per domain; the default domain is `""` (`"ai.onnx"` is folded into it).
    public var opsets: [String: Int]
    /// The tool that wrote the file, e.g. `pytorch 2.13.0`.
    public var producer: String
    /// The main graph.
    public var graph: Graph
    /// The model's `metadata_props`.
    public var metadata: [String: String]

    public init(
        irVersion: Int = 10, opsets: [String: Int], producer: String = "", graph: Graph, metadata: [String: String] = [:]
    ) {
        self.irVersion = irVersion
        self.opsets = opsets
        self.producer = producer
        self.graph = graph
        self.metadata = metadata
    }

    /// The opset version of the default ONNX domain, or `nil` when the model does not import it.
    public var defaultOpset: Int? { opsets[""] }
}

/// A computation graph: nodes in file order, constant weights, and typed inputs and outputs.
public struct Graph: Sendable {
    public var name: String
    public var nodes: [Node]
    /// Weights and other constants, by tensor name.
    public var initializers: [String: Tensor]
    /// The graph inputs, initializers excluded (older exporters list weights as inputs too).
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    /// Type annotations the exporter recorded for intermediate tensors.
    public var valueInfo: [ValueInfo]

    public init(
        name: String = "", nodes: [Node], initializers: [String: Tensor] = [:], inputs: [ValueInfo],
        outputs: [ValueInfo], valueInfo: [ValueInfo] = []
    ) {
        self.name = name
        self.nodes = nodes
        self.initializers = initializers
        self.inputs = inputs.filter { initializers[$0.name] == nil }
        self.outputs = outputs
        self.valueInfo = valueInfo
    }
}

/// A named, typed value: a graph input, output or annotated intermediate.
public struct ValueInfo: Sendable, Equatable {
    public var name: String
    /// The element type, or `nil` when it is missing or not one we support.
    public var elementType: DType?
    /// The ONNX element-type code, kept so errors can name unsupported types.
    public var elementTypeCode: Int
    /// The declared shape, or `nil` when the exporter recorded none.
    public var shape: [Dimension]?

    public init(name: String, elementType: DType? = .float32, shape: [Dimension]? = nil) {
        self.name = name
        self.elementType = elementType
        self.elementTypeCode = elementType.map(ONNXDataType.code) ?? 0
        self.shape = shape
    }

    init(name: String, elementTypeCode: Int, shape: [Dimension]?) {
        self.name = name
        self.elementType = ONNXDataType.dtype(code: elementTypeCode)
        self.elementTypeCode = elementTypeCode
        self.shape = shape
    }
}

/// One axis of a declared shape.
public enum Dimension: Sendable, Equatable, CustomStringConvertible {
    /// A fixed extent.
    case fixed(Int)
    /// A named free extent such as `batch_size`.
    case symbolic(String)
    /// An extent the exporter left blank.
    case unknown

    public var description: String {
        switch self {
        case .fixed(let value): "\(value)"
        case .symbolic(let name): name
        case .unknown: "?"
        }
    }
}

/// One operator application in a graph.
public struct Node: Sendable {
    /// The node's name; may be empty in hand-written graphs.
    public var name: String
    public var opType: String
    /// The operator domain; `""` for the default ONNX domain.
    public var domain: String
    /// Input tensor names; an empty string marks an omitted optional input.
    public var inputs: [String]
    /// Output tensor names; an empty string marks an unused optional output.
    public var outputs: [String]
    public var attributes: [String: Attribute]
    /// The node's `metadata_props` (the dynamo exporter puts module scopes here).
    public var metadata: [String: String]

    public init(
        name: String = "", opType: String, domain: String = "", inputs: [String], outputs: [String],
        attributes: [String: Attribute] = [:], metadata: [String: String] = [:]
    ) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
        self.metadata = metadata
    }

    /// How errors name this node: its name (or first output) and op type.
    public var label: String {
        let identity = !name.isEmpty ? name : outputs.first.map { "producing '\($0)'" } ?? "unnamed"
        return "node '\(identity)' (\(domain.isEmpty ? "" : domain + ".")\(opType))"
    }
}

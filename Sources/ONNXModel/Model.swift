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

    /// A model from its parts, for building graphs in code.
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
    /// The graph's name.
    public var name: String
    /// The nodes, in the file's order.
    public var nodes: [Node]
    /// Weights and other constants, by tensor name.
    public var initializers: [String: Tensor]
    /// The graph inputs, initializers excluded (older exporters list weights as inputs too).
    public var inputs: [ValueInfo]
    /// The graph outputs.
    public var outputs: [ValueInfo]
    /// Type annotations the exporter recorded for intermediate tensors.
    public var valueInfo: [ValueInfo]

    /// Elements in the initializers and in `Constant` nodes: exporters keep weights in either.
    public var parameterCount: Int {
        let constants = nodes.lazy.compactMap { try? $0.constantValue() }.reduce(0) { $0 + $1.count }
        return initializers.values.reduce(constants) { $0 + $1.count }
    }

    /// A graph from its parts.
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
    /// The value's name.
    public var name: String
    /// The element type, or `nil` when it is missing or not one we support.
    public var elementType: DType?
    /// The ONNX element-type code, kept so errors can name unsupported types.
    public var elementTypeCode: Int
    /// The declared shape, or `nil` when the exporter recorded none.
    public var shape: [Dimension]?

    /// A value of `elementType` and `shape` (`nil`: not declared).
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
    /// An extent the exporter left blank (or wrote as `-1`, `0` or `?`).
    case unknown

    /// A `dim_param`: a name, or a placeholder some exporters write for a blank (`?`, `-1`).
    init(parameter: String) {
        let placeholder = parameter.isEmpty || parameter == "?" || Int(parameter).map { $0 <= 0 } == true
        self = placeholder ? .unknown : .symbolic(parameter)
    }

    /// The extent when the axis is fixed; `nil` when it is dynamic. Exporters mark dynamic axes
    /// with names, blanks, `-1` or `0`, so only a positive extent is fixed.
    public var fixedExtent: Int? {
        guard case .fixed(let value) = self, value > 0 else { return nil }
        return value
    }

    /// The extent, or the symbol's name, or `?`.
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
    /// The operator type, `Conv` say.
    public var opType: String
    /// The operator domain; `""` for the default ONNX domain.
    public var domain: String
    /// Input tensor names; an empty string marks an omitted optional input.
    public var inputs: [String]
    /// Output tensor names; an empty string marks an unused optional output.
    public var outputs: [String]
    /// The attributes, by name.
    public var attributes: [String: Attribute]
    /// The node's `metadata_props` (the dynamo exporter puts module scopes here).
    public var metadata: [String: String]

    /// A node from its parts.
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

    /// The tensor a standard-domain `Constant` node holds, from whichever `value…` attribute it
    /// sets; `nil` for any other node.
    package func constantValue() throws -> Tensor? {
        guard opType == "Constant", domain.isEmpty else { return nil }
        if let tensor = try attribute("value", as: Tensor.self) { return tensor }
        if let float = try attribute("value_float", as: Float.self) { return Tensor(scalar: float) }
        if let floats = try attribute("value_floats", as: [Float].self) { return try Tensor(shape: [floats.count], scalars: floats) }
        if let int = try attribute("value_int", as: Int.self) { return Tensor(scalar: Int64(int)) }
        if let ints = try attribute("value_ints", as: [Int].self) { return try Tensor(shape: [ints.count], scalars: ints.map { Int64($0) }) }
        let set = attributes.keys.sorted().joined(separator: ", ")
        throw attributeError(set.isEmpty ? "value" : set, "no supported value attribute (value, value_float(s), value_int(s))")
    }

    /// How errors name this node: its name (or first output) and op type.
    package var label: String {
        let identity = !name.isEmpty ? name : outputs.first.map { "producing '\($0)'" } ?? "unnamed"
        return "node '\(identity)' (\(domain.isEmpty ? "" : domain + ".")\(opType))"
    }
}

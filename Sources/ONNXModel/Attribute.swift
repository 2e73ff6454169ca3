import TensorCore

/// A node attribute value, one case per ONNX `AttributeProto` type we decode.
public indirect enum Attribute: Sendable {
    /// `FLOAT`.
    case float(Float)
    /// `INT`.
    case int(Int)
    /// `STRING`.
    case string(String)
    /// `TENSOR`.
    case tensor(Tensor)
    /// `GRAPH`, a subgraph (If, Loop, Scan bodies).
    case graph(Graph)
    /// `FLOATS`.
    case floats([Float])
    /// `INTS`.
    case ints([Int])
    /// `STRINGS`.
    case strings([String])
    /// `TENSORS`.
    case tensors([Tensor])
    /// `GRAPHS`.
    case graphs([Graph])

    /// The ONNX name of this attribute's type, for error messages.
    public var typeName: String {
        switch self {
        case .float: "FLOAT"
        case .int: "INT"
        case .string: "STRING"
        case .tensor: "TENSOR"
        case .graph: "GRAPH"
        case .floats: "FLOATS"
        case .ints: "INTS"
        case .strings: "STRINGS"
        case .tensors: "TENSORS"
        case .graphs: "GRAPHS"
        }
    }
}

/// A Swift type an attribute can be read as, for ``Node/attribute(_:)``.
package protocol AttributeValue {
    /// The ONNX attribute type expected, for error messages.
    static var attributeTypeName: String { get }
    /// The value, if `attribute` has this type.
    init?(attribute: Attribute)
}

extension Int: AttributeValue {
    package static var attributeTypeName: String { "INT" }
    package init?(attribute: Attribute) {
        guard case .int(let value) = attribute else { return nil }
        self = value
    }
}

extension Float: AttributeValue {
    package static var attributeTypeName: String { "FLOAT" }
    package init?(attribute: Attribute) {
        guard case .float(let value) = attribute else { return nil }
        self = value
    }
}

extension String: AttributeValue {
    package static var attributeTypeName: String { "STRING" }
    package init?(attribute: Attribute) {
        guard case .string(let value) = attribute else { return nil }
        self = value
    }
}

extension Tensor: AttributeValue {
    package static var attributeTypeName: String { "TENSOR" }
    package init?(attribute: Attribute) {
        guard case .tensor(let value) = attribute else { return nil }
        self = value
    }
}

extension Array: AttributeValue where Element: ListAttributeElement {
    package static var attributeTypeName: String { Element.listTypeName }
    package init?(attribute: Attribute) {
        guard let value = Element.list(from: attribute) else { return nil }
        self = value
    }
}

/// An element type of a list attribute (`INTS`, `FLOATS`, `STRINGS`).
package protocol ListAttributeElement {
    static var listTypeName: String { get }
    static func list(from attribute: Attribute) -> [Self]?
}

extension Int: ListAttributeElement {
    package static var listTypeName: String { "INTS" }
    package static func list(from attribute: Attribute) -> [Int]? {
        if case .ints(let value) = attribute { return value }
        return nil
    }
}

extension Float: ListAttributeElement {
    package static var listTypeName: String { "FLOATS" }
    package static func list(from attribute: Attribute) -> [Float]? {
        if case .floats(let value) = attribute { return value }
        return nil
    }
}

extension String: ListAttributeElement {
    package static var listTypeName: String { "STRINGS" }
    package static func list(from attribute: Attribute) -> [String]? {
        if case .strings(let value) = attribute { return value }
        return nil
    }
}

extension Node {
    /// The attribute `name` read as `T`, or `nil` when the node does not set it.
    ///
    /// Throws when the attribute is present with another type, naming the node.
    package func attribute<T: AttributeValue>(_ name: String, as type: T.Type = T.self) throws -> T? {
        guard let attribute = attributes[name] else { return nil }
        guard let value = T(attribute: attribute) else {
            throw ONNXError.attribute(
                node: label, name: name, reason: "is \(attribute.typeName), expected \(T.attributeTypeName)")
        }
        return value
    }

    /// The attribute `name` read as `T`, or the spec's `default` when the node does not set it.
    package func attribute<T: AttributeValue>(_ name: String, default defaultValue: T) throws -> T {
        try attribute(name, as: T.self) ?? defaultValue
    }

    /// The attribute `name`, which the op requires.
    package func requiredAttribute<T: AttributeValue>(_ name: String, as type: T.Type = T.self) throws -> T {
        guard let value = try attribute(name, as: T.self) else {
            throw ONNXError.attribute(node: label, name: name, reason: "is required but missing")
        }
        return value
    }

    /// An error about attribute `name` of this node, for ops that validate values.
    package func attributeError(_ name: String, _ reason: String) -> ONNXError {
        .attribute(node: label, name: name, reason: reason)
    }
}

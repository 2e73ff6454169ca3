import ONNXModel
import TensorCore

/// A built operator: one node's attributes parsed and checked, ready to run.
///
/// Builders run once per node at load time, so attribute errors surface before any input is
/// seen. `forward` may run many times, from several threads at once.
package protocol Operator: Sendable {
    /// Computes the node's outputs. `inputs[i]` is `nil` for an omitted optional input; a `nil`
    /// output is an optional output the op does not produce.
    func forward(_ inputs: OpInputs) throws -> [Tensor?]

    /// The multiply-adds ``forward(_:)`` will take on `inputs`, for ops whose work can exceed a
    /// small multiple of their inputs and outputs (`Int.max` when it overflows), else nil; see
    /// ``WorkBudget``.
    func multiplyAdds(_ inputs: OpInputs) throws -> Int?
}

extension Operator {
    package func multiplyAdds(_ inputs: OpInputs) throws -> Int? { nil }
}

/// The inputs of one node invocation, with accessors that name the node in their errors.
package struct OpInputs {
    package let tensors: [Tensor?]
    /// Which inputs are constants (initializers, `Constant` nodes, folded outputs): the same tensor
    /// on every run, so an op may keep what it derives from them (packed weights).
    private let constant: [Bool]

    package init(_ tensors: [Tensor?], constant: [Bool] = []) {
        self.tensors = tensors
        self.constant = constant
    }

    /// Whether input `index` is a constant (false when unknown).
    package func isConstant(_ index: Int) -> Bool { index < constant.count && constant[index] }

    /// How many inputs the node lists, omitted ones included.
    package var count: Int { tensors.count }

    /// Input `index`, or `nil` when it is omitted or beyond the node's input list.
    package subscript(index: Int) -> Tensor? { index < tensors.count ? tensors[index] : nil }

    /// Input `index`, which the op requires.
    package func required(_ index: Int) throws -> Tensor {
        guard let tensor = self[index] else { throw OpError("input \(index) is required but missing") }
        return tensor
    }
}

/// A problem an op found with its inputs or attributes; the executor adds the node's name.
public struct OpError: Error, CustomStringConvertible {
    /// What went wrong, without the node's name (the executor adds it).
    public let message: String
    package init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// Everything a builder may consult: the node and the opset version its domain was imported at.
package struct OpContext: Sendable {
    package let node: Node
    package let opset: Int

    package init(node: Node, opset: Int) {
        self.node = node
        self.opset = opset
    }

    /// Shorthand for the node's typed attribute getter.
    package func attribute<T: AttributeValue>(_ name: String, default value: T) throws -> T {
        try node.attribute(name, default: value)
    }

    /// The attribute `name`, or `nil` when the node does not set it.
    package func attribute<T: AttributeValue>(_ name: String, as type: T.Type = T.self) throws -> T? {
        try node.attribute(name, as: type)
    }

    /// An error about the value of attribute `name`.
    package func invalid(_ name: String, _ reason: String) -> ONNXError { node.attributeError(name, reason) }
}

/// Maps ONNX op types to the builders that turn a node into an ``Operator``.
///
/// Each op-family file adds its builders in one `register…` function; ``standard`` holds them all.
package struct OpRegistry: Sendable {
    package typealias Builder = @Sendable (OpContext) throws -> any Operator

    private(set) var builders: [String: Builder] = [:]

    package init() {}

    /// Adds or replaces the builder for `opType` in the default ONNX domain.
    package mutating func register(_ opType: String, _ builder: @escaping Builder) {
        builders[opType] = builder
    }

    /// The builder for a node, or `nil` when its op (or domain) is not supported.
    package func builder(for node: Node) -> Builder? {
        node.domain.isEmpty ? builders[node.opType] : nil
    }

    /// The op types this registry supports, sorted.
    package var supportedOps: [String] { builders.keys.sorted() }

    /// Every op this package implements.
    package static let standard: OpRegistry = {
        var registry = OpRegistry()
        registry.registerElementwise()
        registry.registerShapeOps()
        registry.registerLinear()
        registry.registerConvolution()
        registry.registerPooling()
        registry.registerNormalization()
        registry.registerSoftmax()
        registry.registerReductions()
        registry.registerIndexing()
        registry.registerAttention()
        registry.registerActivations()
        registry.registerMathOps()
        registry.registerLogic()
        registry.registerLogSoftmax()
        registry.registerRecurrent()
        registry.registerQuantization()
        registry.registerPadding()
        registry.registerResize()
        registry.registerEinsum()
        registry.registerConvTranspose()
        registry.registerCol2Im()
        registry.registerInstanceNormalization()
        registry.registerLocalNormalization()
        registry.widenForHalfPrecision(widenedForHalfPrecision)
        return registry
    }()
}

/// An operator defined by a closure, for ops whose whole state is a few parsed attributes.
struct ClosureOperator: Operator {
    let body: @Sendable (OpInputs) throws -> [Tensor?]
    func forward(_ inputs: OpInputs) throws -> [Tensor?] { try body(inputs) }
}

extension OpRegistry {
    /// Registers an op whose forward needs nothing parsed from the node.
    mutating func register(_ opType: String, forward: @escaping @Sendable (OpInputs) throws -> [Tensor?]) {
        register(opType) { _ in ClosureOperator(body: forward) }
    }
}

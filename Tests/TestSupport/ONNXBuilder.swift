import Foundation

/// Writes protobuf wire format: enough to build ONNX models byte by byte in tests.
public struct ProtoWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func key(_ field: Int, _ wireType: Int) { varint(UInt64(field << 3 | wireType)) }

    public mutating func int(_ field: Int, _ value: Int) {
        key(field, 0)
        varint(UInt64(bitPattern: Int64(value)))
    }

    public mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func data(_ field: Int, _ value: [UInt8]) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func string(_ field: Int, _ value: String) { data(field, Array(value.utf8)) }

    public mutating func message(_ field: Int, _ build: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        build(&inner)
        data(field, inner.bytes)
    }
}

/// A tiny ONNX model described in Swift and serialized to real protobuf bytes, so tests can make
/// exactly the (good or broken) file they need without committing binary fixtures.
public struct ONNXBuilder {
    public struct NodeSpec {
        public var op: String
        public var inputs: [String]
        public var outputs: [String]
        public var name: String
        public var ints: [String: Int]
        public var intLists: [String: [Int]]
        public var floats: [String: Float]
        public var strings: [String: String]
        /// Tensor attributes (a `Constant` node's `value`).
        public var tensors: [String: TensorSpec]
        public var domain: String

        public init(
            _ op: String, _ inputs: [String], _ outputs: [String], name: String = "", ints: [String: Int] = [:],
            intLists: [String: [Int]] = [:], floats: [String: Float] = [:], strings: [String: String] = [:],
            tensors: [String: TensorSpec] = [:], domain: String = ""
        ) {
            self.tensors = tensors
            self.op = op
            self.inputs = inputs
            self.outputs = outputs
            self.name = name
            self.ints = ints
            self.intLists = intLists
            self.floats = floats
            self.strings = strings
            self.domain = domain
        }
    }

    public enum TensorData {
        /// Raw little-endian bytes in `raw_data`.
        case raw([UInt8])
        /// Values in `float_data`.
        case floats([Float])
        /// Values in `int64_data`.
        case int64s([Int])
        /// `data_location = EXTERNAL` with these key/value entries (location, offset, length).
        case external([(String, String)])
    }

    public struct TensorSpec {
        public var name: String
        public var dataType: Int
        public var dims: [Int]
        public var data: TensorData

        public init(_ name: String, dataType: Int = 1, dims: [Int], data: TensorData) {
            self.name = name
            self.dataType = dataType
            self.dims = dims
            self.data = data
        }

        /// A float32 tensor stored as raw data.
        public static func float(_ name: String, dims: [Int], _ values: [Float]) -> TensorSpec {
            TensorSpec(name, dims: dims, data: .raw(values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }))
        }
    }

    /// One axis of a declared shape, as the file spells it.
    public enum Dim: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral {
        /// `dim_value` (exporters write `-1` or `0` for a free axis too).
        case value(Int)
        /// `dim_param`: a name, or `?`.
        case param(String)
        /// Neither field set.
        case blank

        public init(integerLiteral value: Int) { self = .value(value) }
        public init(stringLiteral value: String) { self = .param(value) }
    }

    /// A graph input or output: name, ONNX element type code, and dims.
    public struct ValueSpec {
        public var name: String
        public var elementType: Int
        public var shape: [Dim]

        /// Dims given as numbers, `nil` entries symbolic (`dim0`, `dim1`, ...).
        public init(_ name: String, elementType: Int = 1, dims: [Int?]) {
            self.init(name, elementType: elementType, shape: dims.enumerated().map { axis, dim in dim.map(Dim.value) ?? .param("dim\(axis)") })
        }

        public init(_ name: String, elementType: Int = 1, shape: [Dim]) {
            self.name = name
            self.elementType = elementType
            self.shape = shape
        }
    }

    public var opset: Int
    public var nodes: [NodeSpec]
    public var initializers: [TensorSpec]
    public var inputs: [ValueSpec]
    public var outputs: [ValueSpec]

    public init(
        opset: Int = 17, nodes: [NodeSpec], initializers: [TensorSpec] = [], inputs: [ValueSpec], outputs: [ValueSpec]
    ) {
        self.opset = opset
        self.nodes = nodes
        self.initializers = initializers
        self.inputs = inputs
        self.outputs = outputs
    }

    /// The serialized `ModelProto`.
    public func serialized() -> Data {
        var model = ProtoWriter()
        model.int(1, 8)  // ir_version
        model.string(2, "onnx-builder")
        model.message(8) { $0.string(1, ""); $0.int(2, opset) }
        model.message(7) { graph in
            for node in nodes { graph.message(1) { ONNXBuilder.write(node, into: &$0) } }
            graph.string(2, "test")
            for tensor in initializers { graph.message(5) { ONNXBuilder.write(tensor, into: &$0) } }
            for value in inputs { graph.message(11) { ONNXBuilder.write(value, into: &$0) } }
            for value in outputs { graph.message(12) { ONNXBuilder.write(value, into: &$0) } }
        }
        return Data(model.bytes)
    }

    /// Writes the model to `url`.
    public func write(to url: URL) throws { try serialized().write(to: url) }

    static func write(_ node: NodeSpec, into w: inout ProtoWriter) {
        for input in node.inputs { w.string(1, input) }
        for output in node.outputs { w.string(2, output) }
        if !node.name.isEmpty { w.string(3, node.name) }
        w.string(4, node.op)
        if !node.domain.isEmpty { w.string(7, node.domain) }
        for (name, value) in node.ints.sorted(by: { $0.key < $1.key }) {
            w.message(5) { $0.string(1, name); $0.int(20, 2); $0.int(3, value) }
        }
        for (name, values) in node.intLists.sorted(by: { $0.key < $1.key }) {
            w.message(5) { a in a.string(1, name); a.int(20, 7); for v in values { a.int(8, v) } }
        }
        for (name, value) in node.floats.sorted(by: { $0.key < $1.key }) {
            w.message(5) { $0.string(1, name); $0.int(20, 1); $0.float(2, value) }
        }
        for (name, value) in node.strings.sorted(by: { $0.key < $1.key }) {
            w.message(5) { $0.string(1, name); $0.int(20, 3); $0.string(4, value) }
        }
        for (name, value) in node.tensors.sorted(by: { $0.key < $1.key }) {
            w.message(5) { a in a.string(1, name); a.int(20, 4); a.message(5) { ONNXBuilder.write(value, into: &$0) } }
        }
    }

    static func write(_ tensor: TensorSpec, into w: inout ProtoWriter) {
        for dim in tensor.dims { w.int(1, dim) }
        w.int(2, tensor.dataType)
        w.string(8, tensor.name)
        switch tensor.data {
        case .raw(let bytes): w.data(9, bytes)
        case .floats(let values): for v in values { w.float(4, v) }
        case .int64s(let values): for v in values { w.int(7, v) }
        case .external(let entries):
            for (key, value) in entries { w.message(13) { $0.string(1, key); $0.string(2, value) } }
            w.int(14, 1)
        }
    }

    static func write(_ value: ValueSpec, into w: inout ProtoWriter) {
        w.string(1, value.name)
        w.message(2) { type in
            type.message(1) { tensor in
                tensor.int(1, value.elementType)
                tensor.message(2) { shape in
                    for dim in value.shape {
                        shape.message(1) { d in
                            switch dim {
                            case .value(let extent): d.int(1, extent)
                            case .param(let name): d.string(2, name)
                            case .blank: break
                            }
                        }
                    }
                }
            }
        }
    }
}

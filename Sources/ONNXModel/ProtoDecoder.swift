import CONNXProto
import Foundation
import TensorCore

/// Turns the C structs that protobuf-c decodes into our Swift model types.
///
/// Raw tensor bytes are adopted rather than copied: the decoder takes ownership of each
/// `raw_data` buffer and clears the field, so freeing the C message later does not free it.
struct ProtoDecoder {
    /// The model's folder, where external data files must live; `nil` refuses external data.
    let directory: URL?

    func model(_ proto: UnsafeMutablePointer<Onnx__ModelProto>, path: String) throws -> Model {
        guard let graphProto = proto.pointee.graph else { throw ONNXError.missingGraph(path: path) }
        var opsets: [String: Int] = [:]
        for entry in messages(proto.pointee.n_opset_import, proto.pointee.opset_import) {
            var domain = string(entry.pointee.domain)
            if domain == "ai.onnx" { domain = "" }
            opsets[domain] = Int(entry.pointee.version)
        }
        guard !opsets.isEmpty else {
            throw ONNXError.notONNX(path: path, reason: "it declares no operator set (opset_import is empty)")
        }
        let producer = [string(proto.pointee.producer_name), string(proto.pointee.producer_version)]
            .filter { !$0.isEmpty }.joined(separator: " ")
        return Model(
            irVersion: Int(proto.pointee.ir_version), opsets: opsets, producer: producer,
            graph: try graph(graphProto),
            metadata: entries(proto.pointee.n_metadata_props, proto.pointee.metadata_props))
    }

    func graph(_ proto: UnsafeMutablePointer<Onnx__GraphProto>) throws -> Graph {
        var initializers: [String: Tensor] = [:]
        for tensorProto in messages(proto.pointee.n_initializer, proto.pointee.initializer) {
            let name = string(tensorProto.pointee.name)
            initializers[name] = try tensor(tensorProto)
        }
        return Graph(
            name: string(proto.pointee.name),
            nodes: try messages(proto.pointee.n_node, proto.pointee.node).map(node),
            initializers: initializers,
            inputs: messages(proto.pointee.n_input, proto.pointee.input).map(valueInfo),
            outputs: messages(proto.pointee.n_output, proto.pointee.output).map(valueInfo),
            valueInfo: messages(proto.pointee.n_value_info, proto.pointee.value_info).map(valueInfo))
    }

    func node(_ proto: UnsafeMutablePointer<Onnx__NodeProto>) throws -> Node {
        var node = Node(
            name: string(proto.pointee.name), opType: string(proto.pointee.op_type),
            domain: string(proto.pointee.domain),
            inputs: strings(proto.pointee.n_input, proto.pointee.input),
            outputs: strings(proto.pointee.n_output, proto.pointee.output),
            metadata: entries(proto.pointee.n_metadata_props, proto.pointee.metadata_props))
        if node.domain == "ai.onnx" { node.domain = "" }
        for attributeProto in messages(proto.pointee.n_attribute, proto.pointee.attribute) {
            let name = string(attributeProto.pointee.name)
            // Attribute kinds we never read (sparse tensors, type protos) are left out; an op that
            // needs one reports it missing, and `inspect` still works on such models.
            if let value = try attribute(attributeProto) { node.attributes[name] = value }
        }
        return node
    }

    func attribute(_ proto: UnsafeMutablePointer<Onnx__AttributeProto>) throws -> Attribute? {
        let a = proto.pointee
        // Old writers may omit `type`; then the field that is set tells it.
        var type = a.has_type != 0 ? Int(a.type.rawValue) : 0
        if type == 0 {
            type =
                a.n_floats > 0 ? 6 : a.n_ints > 0 ? 7 : a.n_strings > 0 ? 8 : a.n_tensors > 0 ? 9 : a.n_graphs > 0 ? 10
                : a.t != nil ? 4 : a.g != nil ? 5 : a.has_s != 0 ? 3 : a.has_i != 0 ? 2 : a.has_f != 0 ? 1 : 0
        }
        switch type {
        case 1: return .float(a.f)
        case 2: return .int(Int(a.i))
        case 3: return .string(bytesString(a.s))
        case 4: return try a.t.map { .tensor(try tensor($0)) }
        case 5: return try a.g.map { .graph(try graph($0)) }
        case 6: return .floats(Array(buffer(a.n_floats, a.floats)))
        case 7: return .ints(buffer(a.n_ints, a.ints).map { Int($0) })
        case 8: return .strings(buffer(a.n_strings, a.strings).map(bytesString))
        case 9: return .tensors(try messages(a.n_tensors, a.tensors).map(tensor))
        case 10: return .graphs(try messages(a.n_graphs, a.graphs).map(graph))
        default: return nil
        }
    }

    func valueInfo(_ proto: UnsafeMutablePointer<Onnx__ValueInfoProto>) -> ValueInfo {
        let name = string(proto.pointee.name)
        guard let type = proto.pointee.type, type.pointee.value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE,
            let tensorType = type.pointee.tensor_type
        else { return ValueInfo(name: name, elementTypeCode: 0, shape: nil) }
        var shape: [Dimension]?
        if let shapeProto = tensorType.pointee.shape {
            shape = messages(shapeProto.pointee.n_dim, shapeProto.pointee.dim).map { dim in
                // paddle2onnx and tf2onnx write `-1`, `0` or `?` for a free axis: all three are dynamic.
                switch dim.pointee.value_case {
                case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE where dim.pointee.dim_value > 0:
                    .fixed(Int(dim.pointee.dim_value))
                case ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM:
                    Dimension(parameter: string(dim.pointee.dim_param))
                default: .unknown
                }
            }
        }
        return ValueInfo(name: name, elementTypeCode: Int(tensorType.pointee.elem_type), shape: shape)
    }

    /// Decodes a tensor, adopting its `raw_data` buffer.
    func tensor(_ proto: UnsafeMutablePointer<Onnx__TensorProto>) throws -> Tensor {
        let name = string(proto.pointee.name)
        let code = Int(proto.pointee.data_type)
        guard let dtype = ONNXDataType.dtype(code: code) else {
            throw ONNXError.unsupportedDataType(tensor: name, type: ONNXDataType.name(code: code))
        }
        let shape = buffer(proto.pointee.n_dims, proto.pointee.dims).map { Int($0) }
        func invalid(_ reason: String) -> ONNXError { .invalidTensor(tensor: name, reason: reason) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw invalid("declared shape \(shape) has a negative dimension") }
        guard let count = try? Shape.elementCount(shape),
            case (let byteCount, false) = count.multipliedReportingOverflow(by: dtype.byteSize)
        else { throw invalid("declared shape \(shape) is too large to address") }

        if proto.pointee.has_data_location != 0, proto.pointee.data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL {
            let storage = try ExternalData.read(
                entries(proto.pointee.n_external_data, proto.pointee.external_data), tensor: name,
                directory: directory, expectedBytes: byteCount)
            return try Tensor(dtype: dtype, shape: shape, storage: storage)
        }
        if proto.pointee.has_raw_data != 0 {
            let raw = proto.pointee.raw_data
            guard raw.len == byteCount else {
                throw invalid("declared shape \(shape) of \(dtype) needs \(byteCount) bytes but raw_data holds \(raw.len)")
            }
            guard let data = raw.data, byteCount > 0 else { return try Tensor(zeros: dtype, shape: shape) }
            let storage = try TensorStorage(adoptingMalloced: data, byteCount: byteCount)
            proto.pointee.raw_data.data = nil
            proto.pointee.raw_data.len = 0
            return try Tensor(dtype: dtype, shape: shape, storage: storage)
        }
        return try typedFieldTensor(proto.pointee, dtype: dtype, shape: shape, count: count, invalid: invalid)
    }

    /// Reads the element values stored in the typed repeated fields (`float_data`, `int32_data`, ...).
    private func typedFieldTensor(
        _ p: Onnx__TensorProto, dtype: DType, shape: [Int], count: Int, invalid: (String) -> ONNXError
    ) throws -> Tensor {
        func fill<Source, Element: TensorScalar>(
            _ n: Int, _ values: UnsafeMutablePointer<Source>?, field: String, _ convert: (Source) -> Element
        ) throws -> Tensor {
            guard n == count else {
                throw invalid("declared shape \(shape) has \(count) elements but \(field) holds \(n) values")
            }
            let source = buffer(n, values)
            return try Tensor.build(Element.self, shape: shape) { out in
                for i in 0..<count { out[i] = convert(source[i]) }
            }
        }
        switch dtype {
        case .float32: return try fill(p.n_float_data, p.float_data, field: "float_data") { $0 }
        case .float64: return try fill(p.n_double_data, p.double_data, field: "double_data") { $0 }
        case .int64: return try fill(p.n_int64_data, p.int64_data, field: "int64_data") { $0 }
        case .int32: return try fill(p.n_int32_data, p.int32_data, field: "int32_data") { $0 }
        case .int8: return try fill(p.n_int32_data, p.int32_data, field: "int32_data") { Int8(truncatingIfNeeded: $0) }
        case .uint8: return try fill(p.n_int32_data, p.int32_data, field: "int32_data") { UInt8(truncatingIfNeeded: $0) }
        case .bool: return try fill(p.n_int32_data, p.int32_data, field: "int32_data") { $0 != 0 }
        case .float16:
            return try fill(p.n_int32_data, p.int32_data, field: "int32_data") { Half(bits: UInt16(truncatingIfNeeded: $0)) }
        }
    }

    // MARK: C helpers

    private func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        pointer.map { String(cString: $0) } ?? ""
    }

    private func bytesString(_ data: ProtobufCBinaryData) -> String {
        guard let bytes = data.data else { return "" }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: data.len), as: UTF8.self)
    }

    private func buffer<T>(_ count: Int, _ pointer: UnsafeMutablePointer<T>?) -> UnsafeBufferPointer<T> {
        UnsafeBufferPointer(start: count > 0 ? pointer : nil, count: pointer == nil ? 0 : count)
    }

    private func messages<T>(_ count: Int, _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?)
        -> [UnsafeMutablePointer<T>]
    {
        buffer(count, pointer).compactMap { $0 }
    }

    private func strings(_ count: Int, _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> [String] {
        buffer(count, pointer).map(string)
    }

    private func entries(
        _ count: Int, _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<Onnx__StringStringEntryProto>?>?
    ) -> [String: String] {
        var result: [String: String] = [:]
        for entry in messages(count, pointer) { result[string(entry.pointee.key)] = string(entry.pointee.value) }
        return result
    }
}

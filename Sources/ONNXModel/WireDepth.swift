/// How deeply a serialized `ModelProto` nests messages, read from the wire format before
/// protobuf-c decodes it.
///
/// protobuf-c decodes sub-messages recursively and without a limit, and so does our decoder: a
/// 60 KB model whose `If` branches nest three thousand deep overflows the stack. Graphs nest
/// through node attributes and types through sequence, map and optional types; this walk follows
/// exactly those fields, with its own stack, and refuses nesting past protobuf's usual limit of
/// 100 messages. Malformed bytes are left for protobuf-c to reject.
enum WireDepth {
    static let limit = 100

    /// The messages on the way down to a graph or type: which fields hold which message.
    private enum Kind {
        case model, graph, node, attribute, valueInfo, type, typeWrapper(valueField: Int)

        func child(_ field: Int) -> Kind? {
            switch (self, field) {
            case (.model, 7): .graph
            case (.graph, 1): .node
            case (.graph, 11), (.graph, 12), (.graph, 13): .valueInfo
            case (.node, 5): .attribute
            case (.attribute, 6), (.attribute, 11): .graph
            case (.attribute, 14), (.attribute, 15), (.valueInfo, 2): .type
            case (.type, 4), (.type, 9): .typeWrapper(valueField: 1)  // sequence, optional: elem_type = 1
            case (.type, 5): .typeWrapper(valueField: 2)  // map: value_type = 2
            case (.typeWrapper(let valueField), let f) where f == valueField: .type
            default: nil
            }
        }
    }

    /// Throws when the `ModelProto` in `bytes` nests messages deeper than ``limit``.
    static func check(_ bytes: UnsafeRawBufferPointer, path: String) throws {
        var stack: [(kind: Kind, end: Int)] = [(.model, bytes.count)]
        var position = 0
        func varint() -> Int? {
            var value = 0
            var shift = 0
            while position < bytes.count, shift < 64 {
                let byte = bytes[position]
                position += 1
                value |= Int(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
            return nil
        }
        while let frame = stack.last {
            guard position < frame.end else {
                stack.removeLast()
                continue
            }
            guard let key = varint() else { return }
            switch key & 7 {
            case 0: guard varint() != nil else { return }
            case 1: position += 8
            case 5: position += 4
            case 2:
                guard let length = varint(), length >= 0, length <= frame.end - position else { return }
                if let child = frame.kind.child(key >> 3) {
                    guard stack.count < limit else {
                        throw ONNXError.notONNX(
                            path: path, reason: "it nests graphs or types more than \(limit) messages deep")
                    }
                    stack.append((child, position + length))
                } else {
                    position += length
                }
            default: return  // groups or garbage: protobuf-c will say so
            }
        }
    }
}

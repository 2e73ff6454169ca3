import CONNXProto
import Foundation
import TensorCore

extension Model {
    /// Loads an ONNX model file, with any external data files beside it.
    ///
    /// The file is memory-mapped for decoding and unmapped before tensors are built; weight bytes
    /// then move from the decoded message into tensors without a copy, so at most two copies of
    /// the weights exist at any moment (the mapped file and the decoded message), and one after.
    public init(contentsOf url: URL) throws {
        let path = url.path
        let proto: UnsafeMutablePointer<Onnx__ModelProto> = try withMappedFile(path) { bytes, size in
            try WireDepth.check(UnsafeRawBufferPointer(start: bytes, count: size), path: path)
            guard let proto = onnx__model_proto__unpack(nil, size, bytes) else {
                throw ONNXError.notONNX(
                    path: path, reason: "protobuf decoding failed; the file is truncated, corrupt, or not an ONNX model")
            }
            return proto
        }
        defer { onnx__model_proto__free_unpacked(proto, nil) }
        self = try ProtoDecoder(directory: url.deletingLastPathComponent()).model(proto, path: path)
    }

    /// Decodes a model from serialized bytes. External data is refused: there is no folder to read it from.
    public init(serializedData data: Data) throws {
        let proto: UnsafeMutablePointer<Onnx__ModelProto>? = try data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return nil }
            try WireDepth.check(raw, path: "<memory>")
            return onnx__model_proto__unpack(nil, raw.count, base.assumingMemoryBound(to: UInt8.self))
        }
        guard let proto else {
            throw ONNXError.notONNX(path: "<memory>", reason: "protobuf decoding failed; the bytes are truncated or not an ONNX model")
        }
        defer { onnx__model_proto__free_unpacked(proto, nil) }
        self = try ProtoDecoder(directory: nil).model(proto, path: "<memory>")
    }
}

extension Tensor {
    /// Reads a serialized ONNX `TensorProto` file, such as the `input_0.pb` files of the ONNX backend tests.
    package init(tensorProtoAt url: URL) throws {
        let path = url.path
        let proto: UnsafeMutablePointer<Onnx__TensorProto> = try withMappedFile(path) { bytes, size in
            guard let proto = onnx__tensor_proto__unpack(nil, size, bytes) else {
                throw ONNXError.notONNX(path: path, reason: "not a serialized TensorProto")
            }
            return proto
        }
        defer { onnx__tensor_proto__free_unpacked(proto, nil) }
        self = try ProtoDecoder(directory: url.deletingLastPathComponent()).tensor(proto)
    }
}

/// Maps a model or tensor file read-only for the duration of `body`.
///
/// The decoder copies every byte field it finds, so a file larger than the memory budget is
/// refused before decoding.
private func withMappedFile<R>(_ path: String, _ body: (UnsafePointer<UInt8>, Int) throws -> R) throws -> R {
    do {
        return try FileIO.withContents(of: path) { bytes in
            guard let base = bytes.baseAddress, bytes.count > 0 else { throw ONNXError.notONNX(path: path, reason: "the file is empty") }
            try MemoryBudget.check(bytes.count, for: "decoding \(path)")
            return try body(base.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
    } catch let error as FileError {
        throw ONNXError.unreadable(path: path, reason: error.reason)
    }
}

/// Errors raised while reading an ONNX model or tensor file.
public enum ONNXError: Error, Equatable, CustomStringConvertible {
    /// The file could not be opened or read.
    case unreadable(path: String, reason: String)
    /// The bytes are not a decodable ONNX protobuf (not an ONNX file, or truncated).
    case notONNX(path: String, reason: String)
    /// The model has no graph.
    case missingGraph(path: String)
    /// A tensor uses an element type we do not support.
    case unsupportedDataType(tensor: String, type: String)
    /// A tensor's declared shape and its data disagree, or the shape is impossible.
    case invalidTensor(tensor: String, reason: String)
    /// A tensor's external data could not be used.
    case externalData(tensor: String, reason: String)
    /// A node attribute is missing, of the wrong type, or has a value the op rejects.
    case attribute(node: String, name: String, reason: String)

    /// The problem in words, naming the file, node or tensor.
    public var description: String {
        switch self {
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .notONNX(let path, let reason): "\(path) is not a readable ONNX model: \(reason)"
        case .missingGraph(let path): "\(path) holds no graph; is it an ONNX model?"
        case .unsupportedDataType(let tensor, let type):
            "tensor '\(tensor)' has element type \(type), which is not supported (supported: float32, float16, double, int64, int32, int8, uint8, bool)"
        case .invalidTensor(let tensor, let reason): "tensor '\(tensor)': \(reason)"
        case .externalData(let tensor, let reason): "external data of tensor '\(tensor)': \(reason)"
        case .attribute(let node, let name, let reason): "\(node), attribute '\(name)': \(reason)"
        }
    }
}

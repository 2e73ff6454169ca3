import TensorCore

/// Errors raised while explaining a model: its shape does not suit a CAM, or a request does not suit the model.
public enum ExplainError: Error, Equatable, CustomStringConvertible {
    /// A model output that should hold `[batch, classes]` scores has another shape.
    case notAClassifier(shape: [Int])
    /// Images or maps of the wrong rank or size; the text says what was expected.
    case invalidInput(String)
    /// Target classes that do not fit the batch or the model's classes.
    case invalidTarget(String)
    /// The generator's configuration cannot work for this model: no layers, no such output.
    case invalidConfiguration(String)
    /// A target layer's tensor cannot be read as a map; names the layer.
    case layer(String, reason: String)

    /// The problem in words.
    public var description: String {
        switch self {
        case .notAClassifier(let shape): return "CAM needs a [batch, classes] output, got \(shape)"
        case .invalidInput(let reason), .invalidTarget(let reason), .invalidConfiguration(let reason): return reason
        case .layer(let name, let reason): return "layer '\(name)': \(reason)"
        }
    }
}

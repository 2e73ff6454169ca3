import Explain
import GraphEngine
import ONNXModel
import TensorCore

/// One feature vector per image from a layer: what the embedding-based detectors read.
///
/// The layer's value for a batch, read channels-first when it is a spatial map (its layout
/// decided from the graph and the shape as for CAM, or given), then averaged over positions
/// (`[N, C, h, w]`) or tokens (`[N, tokens, C]`); `[N, C]` outputs are used as they are.
public struct EmbeddingExtractor: Sendable {
    /// Runs the model.
    public let executor: Executor
    /// The layer's tensor.
    public let tensor: String
    /// How the model's input orders an image batch.
    public let inputLayout: ImageLayout
    private let layouts: LayerLayouts
    private let layerLayout: LayerLayout?

    /// An extractor for `layer` (a module path, node or tensor name) of `model`.
    ///
    /// - Parameters:
    ///   - inputLayout: How the model takes images; read from its declared input shape when `nil`.
    ///   - layerLayout: How the layer holds channels; decided from the graph and the shape when `nil`.
    public init(model: Model, layer: String, inputLayout: ImageLayout? = nil, layerLayout: LayerLayout? = nil) throws {
        try self.init(executor: Executor(model: model), layer: layer, inputLayout: inputLayout, layerLayout: layerLayout)
    }

    /// An extractor that runs `executor`, for callers that hold one already.
    package init(executor: Executor, layer: String, inputLayout: ImageLayout?, layerLayout: LayerLayout?) throws {
        self.executor = executor
        tensor = try LayerResolver(model: executor.model).resolve(layer).tensor
        self.inputLayout = inputLayout ?? executor.imageLayout
        layouts = LayerLayouts(model: executor.model, inputLayout: self.inputLayout)
        self.layerLayout = layerLayout
    }

    /// The embeddings of a batch of preprocessed images: `N × C` values, row-major.
    public func embeddings(_ batch: Tensor) throws -> [Float] {
        guard batch.rank == 4, let input = executor.inputs.first?.name else {
            throw AuditError.invalid("embeddings need a 4-D image batch, got \(batch.shape)")
        }
        guard let value = try executor.run([input: batch], fetch: [tensor])[tensor] else {
            throw AuditError.invalid("layer tensor '\(tensor)' was not computed")
        }
        return try embeddings(of: value, batch: batch)
    }

    /// The embeddings from the layer's value `x` for `batch` (computed in a pass that ran anyway).
    package func embeddings(of x: Tensor, batch: Tensor) throws -> [Float] {
        let image = (batch.shape[inputLayout.heightAxis], batch.shape[inputLayout.widthAxis])
        return try Embeddings.pooled(layouts.channelsFirstMap(x, of: tensor, image: image, layout: layerLayout))
    }
}

/// Pooling a layer's value into one feature vector per sample.
package enum Embeddings {
    /// `[N, C, h, w]` averaged over positions, `[N, tokens, C]` over tokens, `[N, C]` as is:
    /// `N × C` values, row-major.
    package static func pooled(_ x: Tensor) throws -> [Float] {
        let values = try x.converted(to: .float32).scalars(as: Float.self)
        switch x.rank {
        case 2: return values
        case 4:
            let (n, c, size) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
            return (0..<n * c).map { plane in values[plane * size..<(plane + 1) * size].reduce(0, +) / Float(max(size, 1)) }
        case 3:
            let (n, t, c) = (x.shape[0], x.shape[1], x.shape[2])
            return (0..<n).flatMap { s in (0..<c).map { k in (0..<t).reduce(Float(0)) { $0 + values[(s * t + $1) * c + k] } / Float(max(t, 1)) } }
        default:
            throw AuditError.invalid("layer output \(x.shape) is not [N, C], [N, C, h, w] or [N, tokens, C]")
        }
    }
}

import TensorCore

/// One feature vector per sample from a layer's output, for the embedding-based detectors.
public enum Embeddings {
    /// `[N, C, h, w]` averaged over positions, `[N, tokens, C]` over tokens, `[N, C]` as is:
    /// `N × C` values, row-major.
    public static func pooled(_ x: Tensor) throws -> [Float] {
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

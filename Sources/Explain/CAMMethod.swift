/// The class activation map methods, as pytorch-grad-cam defines them.
///
/// Each turns a layer's activations `A` (`[channels, positions]` per sample) and the gradients
/// `G = ∂score/∂A` into one value per position, before any ReLU or normalization.
public enum CAMMethod: String, Sendable, CaseIterable {
    /// `Σ_k mean(G_k) A_k` (Selvaraju et al.).
    case gradCAM = "gradcam"
    /// `Σ_k G_k ⊙ A_k` (Draelos & Carin).
    case hiResCAM = "hirescam"
    /// Channel weights `Σ relu(G) α`, `α = G² / (2G² + Σ_pos A · G³)` (Chattopadhay et al.).
    case gradCAMPlusPlus = "gradcam++"
    /// Channel weights `Σ_pos G ⊙ A / Σ_pos A` (Fu et al.).
    case xGradCAM = "xgradcam"
    /// `Σ_k relu(G_k) ⊙ A_k` (Jiang et al.).
    case layerCAM = "layercam"
    /// The first principal component of the activations; no gradients (Muhammad & Yeasin).
    case eigenCAM = "eigencam"
    /// The first principal component of `G ⊙ A`.
    case eigenGradCAM = "eigengradcam"
    /// `Σ_k relu(G_k ⊙ A_k)`.
    case gradCAMElementWise = "gradcam-elementwise"
    /// Channel weights from the score of the input masked by each upsampled channel, softmaxed;
    /// no gradients (Wang et al.).
    case scoreCAM = "scorecam"

    /// Whether the method needs a backward pass.
    public var usesGradients: Bool { self != .eigenCAM && self != .scoreCAM }

    /// The raw map of one sample, from its activations and gradients as stored (float32, or
    /// float64) and in double precision; `channelWeights` is only read by ScoreCAM.
    ///
    /// Methods that weight each channel, or combine `G` and `A` element by element, sum each
    /// position's terms over the channels in order, straight into the map; the eigen methods
    /// project the combined `[channels, positions]` matrix.
    func rawMap<S: BinaryFloatingPoint>(
        activations a: UnsafeBufferPointer<S>, gradients g: UnsafeBufferPointer<S>, channels: Int, positions: Int,
        eigenSmooth: Bool, channelWeights: [Double]? = nil
    ) -> [Double] {
        func spatialSum(_ k: Int, _ f: (Int) -> Double) -> Double {
            var total = 0.0
            for p in 0..<positions { total += f(k * positions + p) }
            return total
        }
        /// The channel weights of the methods that have them.
        func weight(_ k: Int) -> Double? {
            switch self {
            case .gradCAM: return spatialSum(k) { Double(g[$0]) } / Double(positions)
            case .gradCAMPlusPlus:
                let activationSum = spatialSum(k) { Double(a[$0]) }
                return spatialSum(k) { i in
                    let gi = Double(g[i])
                    let g2 = gi * gi
                    guard gi != 0 else { return 0 }
                    let alpha = g2 / (2 * g2 + activationSum * g2 * gi + 1e-6)
                    return max(gi, 0) * alpha
                }
            case .xGradCAM:
                let activationSum = spatialSum(k) { Double(a[$0]) }
                return spatialSum(k) { Double(g[$0]) * Double(a[$0]) / (activationSum + 1e-7) }
            case .scoreCAM: return channelWeights?[k] ?? 0
            case .hiResCAM, .eigenGradCAM, .layerCAM, .gradCAMElementWise, .eigenCAM: return nil
            }
        }
        /// The term of element `i` for the methods without channel weights.
        func term(_ i: Int) -> Double {
            switch self {
            case .hiResCAM, .eigenGradCAM: return Double(g[i]) * Double(a[i])
            case .layerCAM: return max(Double(g[i]), 0) * Double(a[i])
            case .gradCAMElementWise: return max(Double(g[i]) * Double(a[i]), 0)
            default: return Double(a[i])
            }
        }
        if eigenSmooth || self == .eigenCAM || self == .eigenGradCAM {
            var combined = [Double](repeating: 0, count: channels * positions)
            for k in 0..<channels {
                if let w = weight(k) {
                    for p in 0..<positions { combined[k * positions + p] = w * Double(a[k * positions + p]) }
                } else {
                    for p in 0..<positions { combined[k * positions + p] = term(k * positions + p) }
                }
            }
            return Projection.firstComponent(combined, channels: channels, positions: positions)
        }
        var map = [Double](repeating: 0, count: positions)
        for k in 0..<channels {
            if let w = weight(k) {
                for p in 0..<positions { map[p] += w * Double(a[k * positions + p]) }
            } else {
                for p in 0..<positions { map[p] += term(k * positions + p) }
            }
        }
        return map
    }
}

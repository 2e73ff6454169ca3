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

    /// The raw map of one sample. `channelWeights` is only read by ScoreCAM.
    func rawMap(
        activations a: [Double], gradients g: [Double], channels: Int, positions: Int, eigenSmooth: Bool,
        channelWeights: [Double]? = nil
    ) -> [Double] {
        func perChannel(_ weight: (Int) -> Double) -> [Double] {
            var weighted = [Double](repeating: 0, count: channels * positions)
            for k in 0..<channels {
                let w = weight(k)
                for p in 0..<positions { weighted[k * positions + p] = w * a[k * positions + p] }
            }
            return weighted
        }
        func sumOverChannels(_ x: [Double]) -> [Double] {
            var map = [Double](repeating: 0, count: positions)
            for k in 0..<channels { for p in 0..<positions { map[p] += x[k * positions + p] } }
            return map
        }
        func spatialSum(_ k: Int, _ f: (Int) -> Double) -> Double {
            var total = 0.0
            for p in 0..<positions { total += f(k * positions + p) }
            return total
        }
        let combined: [Double]
        switch self {
        case .gradCAM:
            combined = perChannel { k in spatialSum(k) { g[$0] } / Double(positions) }
        case .gradCAMPlusPlus:
            combined = perChannel { k in
                let activationSum = spatialSum(k) { a[$0] }
                return spatialSum(k) { i in
                    let g2 = g[i] * g[i]
                    guard g[i] != 0 else { return 0 }
                    let alpha = g2 / (2 * g2 + activationSum * g2 * g[i] + 1e-6)
                    return max(g[i], 0) * alpha
                }
            }
        case .xGradCAM:
            combined = perChannel { k in
                let activationSum = spatialSum(k) { a[$0] }
                return spatialSum(k) { g[$0] * a[$0] / (activationSum + 1e-7) }
            }
        case .scoreCAM:
            combined = perChannel { channelWeights?[$0] ?? 0 }
        case .hiResCAM, .eigenGradCAM:
            combined = zip(g, a).map { $0 * $1 }
        case .layerCAM:
            combined = zip(g, a).map { max($0, 0) * $1 }
        case .gradCAMElementWise:
            combined = zip(g, a).map { max($0 * $1, 0) }
        case .eigenCAM:
            combined = a
        }
        if eigenSmooth || self == .eigenCAM || self == .eigenGradCAM {
            return Projection.firstComponent(combined, channels: channels, positions: positions)
        }
        return sumOverChannels(combined)
    }
}

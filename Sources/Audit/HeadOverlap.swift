import TensorCore

/// Where two heads of one model look, compared: the reference's `calculate_overlap`.
///
/// Each pair of `[H, W]` maps (values in [0, 1], as min-max normalized heatmaps are) is
/// thresholded at `threshold`; **Dice** is `2|A∩B| / (|A| + |B| + 1e-8)`, **IoU**
/// `|A∩B| / (|A∪B| + 1e-8)`, and **cosine** the cosine similarity of the unthresholded maps (0 when
/// either is all zero). Does the model look at the same place to predict the disease as to
/// predict the protected attribute? High overlap says the two predictions share evidence.
public struct HeadOverlap: Sendable, Equatable {
    /// The overlap of two binarized maps.
    public struct Scores: Sendable, Equatable {
        /// `2 |A ∩ B| / (|A| + |B|)`.
        public let dice: Double
        /// `|A ∩ B| / |A ∪ B|`.
        public let iou: Double
        /// The cosine similarity of the maps before thresholding.
        public let cosine: Double
    }

    /// One entry per image.
    public let perImage: [Scores]
    /// The means over the images.
    public let mean: Scores

    /// Compares `[N, H, W]` (or one `[H, W]`) heatmaps of two heads, image by image.
    public static func compare(_ a: Tensor, _ b: Tensor, threshold: Double = 0.5) throws -> HeadOverlap {
        guard a.shape == b.shape, a.rank == 2 || a.rank == 3 else {
            throw AuditError.invalid("heatmaps must share one [N, H, W] or [H, W] shape to be compared, got \(a.shape) and \(b.shape)")
        }
        let x = try a.converted(to: .float32).scalars(as: Float.self)
        let y = try b.converted(to: .float32).scalars(as: Float.self)
        let count = a.rank == 3 ? a.shape[0] : 1
        let size = x.count / max(count, 1)
        let cut = Float(threshold)
        let eps = 1e-8
        let perImage = (0..<count).map { n -> Scores in
            var (inA, inB, both) = (0, 0, 0)
            var (dot, normA, normB) = (0.0, 0.0, 0.0)
            for i in n * size..<(n + 1) * size {
                let (p, q) = (x[i] >= cut, y[i] >= cut)
                inA += p ? 1 : 0
                inB += q ? 1 : 0
                both += p && q ? 1 : 0
                dot += Double(x[i]) * Double(y[i])
                normA += Double(x[i]) * Double(x[i])
                normB += Double(y[i]) * Double(y[i])
            }
            let (lengthA, lengthB) = (normA.squareRoot(), normB.squareRoot())
            return Scores(
                dice: 2 * Double(both) / (Double(inA + inB) + eps), iou: Double(both) / (Double(inA + inB - both) + eps),
                cosine: lengthA < eps || lengthB < eps ? 0 : dot / (lengthA * lengthB))
        }
        func mean(_ value: (Scores) -> Double) -> Double { perImage.map(value).reduce(0, +) / Double(max(perImage.count, 1)) }
        return HeadOverlap(perImage: perImage, mean: Scores(dice: mean(\.dice), iou: mean(\.iou), cosine: mean(\.cosine)))
    }
}

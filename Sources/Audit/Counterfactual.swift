import Foundation
import Imaging
import TensorCore

/// How the counterfactual test fills the shortcut region of each preprocessed input before the
/// model predicts again: the evidence attention alone cannot give (does the prediction depend on
/// what is in the region?).
public enum CounterfactualFill: String, Sendable, Codable, CaseIterable {
    /// Each channel's mean over the input's pixels outside the region.
    case mean
    /// The input blurred by a Gaussian blur at its default σ (`max(H, W) / 16`), inside the region.
    case blur
    /// Seeded Gaussian noise with each channel's mean and (population) standard deviation over the
    /// whole input; the draws come from a PyTorch-compatible generator seeded per sample.
    case noise

    /// What the fill puts in the region, for sentences.
    public var phrase: String {
        switch self {
        case .mean: "the mean of the rest of the image"
        case .blur: "a Gaussian blur"
        case .noise: "Gaussian noise with the image's statistics"
        }
    }

    /// One preprocessed input, `channels` planes of the region's size, with the region filled.
    /// - Parameter seed: The noise's seed (a base seed combined with the sample's index); unused by
    ///   the other fills.
    public func apply(_ input: [Float], channels: Int, region: RegionMask, seed: UInt32) throws -> [Float] {
        let size = region.height * region.width
        guard channels > 0, input.count == channels * size else {
            throw AuditError.invalid("the region is \(region.height)x\(region.width) but the input holds \(input.count) values in \(channels) channels")
        }
        var out = input
        switch self {
        case .mean:
            let outside = region.inside.indices.filter { !region.inside[$0] }
            guard !outside.isEmpty else { throw AuditError.invalid("the region covers the whole input: no pixel is left to take a mean over") }
            for c in 0..<channels {
                let mean = Float(outside.reduce(0.0) { $0 + Double(input[c * size + $1]) } / Double(outside.count))
                for p in 0..<size where region.inside[p] { out[c * size + p] = mean }
            }
        case .blur:
            let blurred = try GaussianBlur.apply(
                input, channels: channels, height: region.height, width: region.width,
                sigma: GaussianBlur.defaultSigma(height: region.height, width: region.width))
            for c in 0..<channels { for p in 0..<size where region.inside[p] { out[c * size + p] = blurred[c * size + p] } }
        case .noise:
            var generator = TorchGenerator(seed: seed)
            let z = generator.normalContiguous(channels * size)
            for c in 0..<channels {
                let plane = input[c * size..<(c + 1) * size]
                let mean = plane.reduce(0.0) { $0 + Double($1) } / Double(size)
                let variance = plane.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(size)
                let (m, s) = (Float(mean), Float(variance.squareRoot()))
                for p in 0..<size where region.inside[p] { out[c * size + p] = m + s * z[c * size + p] }
            }
        }
        return out
    }

    /// A `[N, C, H, W]` batch with the region filled in every input; `seeds` has one per sample.
    public func apply(batch: Tensor, region: RegionMask, seeds: [UInt32]) throws -> Tensor {
        guard batch.rank == 4, batch.shape[2] == region.height, batch.shape[3] == region.width, seeds.count == batch.shape[0] else {
            throw AuditError.invalid("a \(region.height)x\(region.width) region cannot fill a batch of \(batch.shape)")
        }
        let values = try batch.converted(to: .float32).scalars(as: Float.self)
        let volume = batch.shape[1] * region.height * region.width
        var filled: [Float] = []
        filled.reserveCapacity(values.count)
        for (n, seed) in seeds.enumerated() {
            filled += try apply(Array(values[n * volume..<(n + 1) * volume]), channels: batch.shape[1], region: region, seed: seed)
        }
        return try Tensor(shape: batch.shape, scalars: filled).converted(to: batch.dtype)
    }
}

/// What the model predicts once the region is filled.
public struct CounterfactualRecord: Sendable, Equatable, Codable {
    /// The prediction on the filled input.
    public let predicted: Int
    /// The probability the filled input gives the originally predicted class.
    public let confidence: Double

    /// A record of the prediction on the filled input.
    public init(predicted: Int, confidence: Double) {
        self.predicted = predicted
        self.confidence = confidence
    }
}

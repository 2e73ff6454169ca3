import Foundation

/// torchvision's `gaussian_blur` on float planes: a normalized Gaussian kernel of
/// `2⌈3σ⌉ + 1` taps per axis, reflect padding (the edge pixel is not repeated), applied to each
/// channel. It is what the audit's counterfactual `blur` fill and the insertion curve's start
/// image use, with ``defaultSigma(height:width:)``.
package enum GaussianBlur {
    /// σ = max(H, W) / 16: 4 pixels at 64, 14 at 224; wide enough to wipe out a watermark or a
    /// ruler a tenth of the image across, narrow enough to keep the image's layout.
    package static func defaultSigma(height: Int, width: Int) -> Double { Double(max(height, width)) / 16 }

    /// The taps of the 1-D kernel: `exp(−x² / 2σ²)` at `x = −r…r`, normalized to sum 1, with
    /// `r = ⌈3σ⌉` shortened to `limit − 1` so reflect padding stays inside the image.
    package static func kernel(sigma: Double, limit: Int) -> [Double] {
        let radius = max(0, min(Int((3 * sigma).rounded(.up)), limit - 1))
        let pdf = (-radius...radius).map { x in exp(-0.5 * (Double(x) / sigma) * (Double(x) / sigma)) }
        let total = pdf.reduce(0, +)
        return pdf.map { $0 / total }
    }

    /// Blurs `channels` planes of `height` x `width` values (channel-major, row-major).
    package static func apply(_ planes: [Float], channels: Int, height: Int, width: Int, sigma: Double) throws -> [Float] {
        guard channels > 0, height > 0, width > 0, planes.count == channels * height * width else {
            throw ImageError.invalid("a blur of \(channels) planes of \(height)x\(width) needs \(channels * height * width) values, got \(planes.count)")
        }
        guard sigma > 0, sigma.isFinite else { throw ImageError.invalid("the blur's sigma must be positive, got \(sigma)") }
        let taps = kernel(sigma: sigma, limit: min(height, width))
        let radius = taps.count / 2
        func reflect(_ i: Int, _ n: Int) -> Int { i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i) }
        var out = [Float](repeating: 0, count: planes.count)
        var rows = [Double](repeating: 0, count: height * width)
        for c in 0..<channels {
            let plane = c * height * width
            for y in 0..<height {
                for x in 0..<width {
                    var sum = 0.0
                    for (k, tap) in taps.enumerated() { sum += tap * Double(planes[plane + y * width + reflect(x + k - radius, width)]) }
                    rows[y * width + x] = sum
                }
            }
            for y in 0..<height {
                for x in 0..<width {
                    var sum = 0.0
                    for (k, tap) in taps.enumerated() { sum += tap * rows[reflect(y + k - radius, height) * width + x] }
                    out[plane + y * width + x] = Float(sum)
                }
            }
        }
        return out
    }
}

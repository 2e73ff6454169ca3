import Detectors
import Foundation

/// PyTorch's CPU random generator after `torch.manual_seed(seed)`, as far as `torch.randn`
/// and `torch.randn_like` use it (torch 2.x), so noise drawn here is the noise a PyTorch
/// reference draws from the same seed: the Mersenne Twister MT19937 seeded by `init_genrand`.
/// ROAD's imputer and the counterfactual `noise` fill both draw contiguous float tensors.
///
/// - Strided draws (``normalStrided(_:)``): a tensor that is not contiguous, or is contiguous
///   with fewer than 16 values, is filled in memory order from `normal_distribution<double>`:
///   two 53-bit uniforms `u₁, u₂` (each from two 32-bit words, the first one high), Box–Muller
///   `√(−2 log1p(−u₂)) · cos(2π u₁)`, and the matching sine kept for the next value. Exact.
/// - Contiguous float draws of 16 or more (``normalContiguous(_:)``): `normal_fill`: every value
///   first gets a 24-bit uniform, then blocks of 16 become Box–Muller pairs `(j, j + 8)` in
///   float32 (a tail that is not a whole block redraws the last 16); PyTorch evaluates them with
///   SLEEF's vector `log`/`cos`/`sin`, so a draw can differ from ours by a few float32 ulps
///   (up to 1.2e-6 on the draws the tests check).
package struct TorchGenerator {
    private var engine: LegacyRandomState
    private var nextNormal: Double?

    package init(seed: UInt32) { engine = LegacyRandomState(seed: seed) }

    /// The seed of one sample's draws: `(base + 1000003 · index + stream) mod 2³²`, so each
    /// sample's noise depends on its position in the audit only (shards draw what one run draws).
    package static func seed(base: UInt32, index: Int, stream: Int = 0) -> UInt32 {
        UInt32(truncatingIfNeeded: UInt64(base) &+ 1_000_003 &* UInt64(truncatingIfNeeded: index) &+ UInt64(truncatingIfNeeded: stream))
    }

    private mutating func uniformDouble() -> Double {
        let high = UInt64(engine.nextUInt32())
        let low = UInt64(engine.nextUInt32())
        return Double(((high << 32) | low) & ((1 << 53) - 1)) * 0x1p-53
    }

    private mutating func uniformFloat() -> Float {
        Float(Double(engine.nextUInt32() & ((1 << 24) - 1)) * 0x1p-24)
    }

    /// One draw of `at::normal_distribution<double>(0, 1)`.
    package mutating func normalDouble() -> Double {
        if let cached = nextNormal {
            nextNormal = nil
            return cached
        }
        let u1 = uniformDouble()
        let u2 = uniformDouble()
        let radius = (-2 * log1p(-u2)).squareRoot()
        let theta = 2 * Double.pi * u1
        nextNormal = radius * sin(theta)
        return radius * cos(theta)
    }

    /// `randn_like` of a tensor that is not contiguous (or is small): `count` values in memory order.
    package mutating func normalStrided(_ count: Int) -> [Float] {
        (0..<max(count, 0)).map { _ in Float(normalDouble()) }
    }

    /// `torch.randn(count)` (a contiguous float32 tensor).
    package mutating func normalContiguous(_ count: Int) -> [Float] {
        guard count >= 16 else { return normalStrided(count) }
        var data = (0..<count).map { _ in uniformFloat() }
        func fill(_ base: Int) {
            for j in 0..<8 {
                let u1 = 1 - data[base + j]
                let u2 = data[base + j + 8]
                let radius = (-2 * Foundation.log(u1)).squareRoot()
                let theta = 2 * Float.pi * u2
                data[base + j] = radius * Foundation.cos(theta)
                data[base + j + 8] = radius * Foundation.sin(theta)
            }
        }
        for base in stride(from: 0, to: count - 15, by: 16) { fill(base) }
        if count % 16 != 0 {
            for j in count - 16..<count { data[j] = uniformFloat() }
            fill(count - 16)
        }
        return data
    }
}

import Foundation

/// The distribution functions the tests need, in double precision.
enum Distributions {
    /// `P(Z > z)` for a standard normal `Z` (SciPy's `ndtr(-z)`), accurate in the far tail.
    static func normalSurvival(_ z: Double) -> Double {
        0.5 * erfc(z / 2.0.squareRoot())
    }

    /// `P(F > f)` for an F distribution with `d1` and `d2` degrees of freedom (SciPy's `f.sf`).
    static func fSurvival(_ f: Double, _ d1: Double, _ d2: Double) -> Double {
        guard f.isFinite else { return f > 0 ? 0 : .nan }
        guard f > 0 else { return 1 }
        return regularizedIncompleteBeta(d2 / 2, d1 / 2, d2 / (d2 + d1 * f))
    }

    /// `I_x(a, b)`, the regularized incomplete beta function, by its continued fraction
    /// (modified Lentz), using the symmetry `I_x(a, b) = 1 − I_{1−x}(b, a)` where the fraction
    /// converges slowly.
    static func regularizedIncompleteBeta(_ a: Double, _ b: Double, _ x: Double) -> Double {
        guard x > 0 else { return 0 }
        guard x < 1 else { return 1 }
        if x > (a + 1) / (a + b + 2) {
            return 1 - regularizedIncompleteBeta(b, a, 1 - x)
        }
        let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
        return exp(logFront) * betaContinuedFraction(a, b, x) / a
    }

    private static func betaContinuedFraction(_ a: Double, _ b: Double, _ x: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0
        var d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var result = d
        for m in 1...10_000 {
            let m = Double(m)
            // Even step.
            var numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + numerator * d
            if abs(d) < tiny { d = tiny }
            c = 1 + numerator / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            result *= d * c
            // Odd step.
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + numerator * d
            if abs(d) < tiny { d = tiny }
            c = 1 + numerator / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let step = d * c
            result *= step
            if abs(step - 1) < 1e-15 { break }
        }
        return result
    }
}

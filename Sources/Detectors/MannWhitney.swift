import Foundation

/// Ranks with ties sharing their average rank (SciPy's `rankdata(method="average")`).
enum Ranking {
    /// 1-based average ranks, and the size of every group of tied values.
    static func averageRanks(_ values: [Double]) -> (ranks: [Double], ties: [Int]) {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var ties: [Int] = []
        var start = 0
        while start < order.count {
            var end = start + 1
            while end < order.count && values[order[end]] == values[order[start]] { end += 1 }
            let rank = Double(start + end + 1) / 2  // mean of start+1 ... end
            for k in start..<end { ranks[order[k]] = rank }
            ties.append(end - start)
            start = end
        }
        return (ranks, ties)
    }
}

/// The two-sided Mann–Whitney U test, with SciPy's `mannwhitneyu` defaults.
///
/// `U₁ = R₁ − n₁(n₁+1)/2` from the average ranks of the pooled sample. When both samples have
/// more than 8 values, or there are ties, the p-value is asymptotic:
/// `z = (max(U₁, U₂) − n₁n₂/2 − ½) / σ` with the tie-corrected
/// `σ² = n₁n₂/12 · (n + 1 − Σ(t³ − t) / (n(n − 1)))`, `p = 2·P(Z > z)`. Otherwise it is exact,
/// from the null distribution of `U` (the coefficients of the Gaussian binomial
/// `[n₁+n₂ choose n₁]_q`). Either way `p` is clipped to `[0, 1]`.
enum MannWhitney {
    struct Result: Equatable {
        /// `U` of the first sample.
        let u: Double
        let p: Double
    }

    static func test(_ x: [Double], _ y: [Double]) -> Result {
        let (n1, n2) = (x.count, y.count)
        guard n1 > 0, n2 > 0 else { return Result(u: .nan, p: .nan) }
        let (ranks, ties) = Ranking.averageRanks(x + y)
        var r1 = 0.0
        for i in 0..<n1 { r1 += ranks[i] }
        let u1 = r1 - Double(n1 * (n1 + 1)) / 2
        let u2 = Double(n1 * n2) - u1
        let u = max(u1, u2)
        let hasTies = ties.contains { $0 > 1 }
        let p: Double
        if (n1 > 8 && n2 > 8) || hasTies {
            let n = Double(n1 + n2)
            let tieTerm = ties.reduce(0.0) { $0 + Double($1) * Double($1) * Double($1) - Double($1) }
            let sigma = (Double(n1) * Double(n2) / 12 * ((n + 1) - tieTerm / (n * (n - 1)))).squareRoot()
            let z = (u - Double(n1) * Double(n2) / 2 - 0.5) / sigma
            p = 2 * Distributions.normalSurvival(z)
        } else {
            p = 2 * exactLowerTail(Int(Double(n1 * n2) - u), n1, n2)
        }
        return Result(u: u1, p: min(max(p, 0), 1))
    }

    /// `P(U ≤ k)` under the null for samples of `n1` and `n2` values without ties.
    static func exactLowerTail(_ k: Int, _ n1: Int, _ n2: Int) -> Double {
        let (m, n) = (min(n1, n2), max(n1, n2))
        // Coefficients of Π_{i=1..m} (1 − q^{n+i}) / (1 − q^i), one factor pair at a time: each
        // product is a Gaussian binomial, so the division is exact.
        var counts = [Double](repeating: 0, count: m * n + m + 1)
        counts[0] = 1
        for i in 1...m {
            let top = (i - 1) * n + n + i
            for e in stride(from: top, through: n + i, by: -1) { counts[e] -= counts[e - n - i] }
            for e in stride(from: i, through: top, by: 1) { counts[e] += counts[e - i] }
        }
        var total = 1.0  // C(m + n, m)
        for i in 1...m { total = total * Double(n + i) / Double(i) }
        var below = 0.0
        for e in stride(from: 0, through: min(k, m * n), by: 1) { below += counts[e] }
        return below / total
    }
}

/// Multiple-testing control.
package enum MultipleTesting {
    /// Benjamini–Hochberg at false-discovery rate `alpha` (statsmodels' `fdr_bh`): with p-values
    /// sorted ascending, every hypothesis up to the last `p₍ᵢ₎ ≤ alpha·i/m` is a discovery.
    package static func benjaminiHochberg(_ pValues: [Double], alpha: Double = 0.05) -> [Bool] {
        let order = pValues.indices.sorted { pValues[$0] < pValues[$1] }
        let m = Double(pValues.count)
        var cutoff = -1
        for (rank, index) in order.enumerated() where pValues[index] <= Double(rank + 1) / m * alpha { cutoff = rank }
        var significant = [Bool](repeating: false, count: pValues.count)
        if cutoff >= 0 { for rank in 0...cutoff { significant[order[rank]] = true } }
        return significant
    }
}

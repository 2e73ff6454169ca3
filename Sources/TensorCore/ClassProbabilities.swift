import Foundation

/// What a classifier's `[N, classes]` output holds, and so whether a softmax turns it into
/// class probabilities.
public enum OutputKind: String, Sendable, CaseIterable, Codable {
    /// Unnormalized scores: probabilities are their softmax.
    case logits
    /// Already a distribution per row (the graph ends in Softmax): used as it is.
    case probabilities
    /// Decided per row: a row that is non-negative and sums to 1 is used as it is, any other
    /// row is softmaxed.
    case auto
}

/// Class probabilities from model outputs: the one softmax the library uses on scores.
package enum ClassProbabilities {
    /// `exp(x − max x) / Σ exp(x − max x)`, in double precision.
    package static func softmax<C: Collection>(_ row: C) -> [Double] where C.Element == Double {
        let largest = row.max() ?? 0
        let exps = row.map { exp($0 - largest) }
        let total = exps.reduce(0, +)
        return exps.map { $0 / total }
    }

    /// Whether a row already is a probability distribution: no negative entry and a sum within
    /// 1e-3 of 1 (float32 softmax over a few thousand classes sums to 1 within ~1e-5; scores that
    /// happen to land this close to a distribution are vanishingly rare).
    package static func isDistribution<C: Collection>(_ row: C) -> Bool where C.Element == Double {
        !row.isEmpty && row.allSatisfy { $0 >= 0 && $0.isFinite } && abs(row.reduce(0, +) - 1) <= 1e-3
    }

    /// Each row of a row-major `[rows, width]` output as probabilities, read as `kind` says.
    package static func rows(_ values: [Double], width: Int, kind: OutputKind) -> [[Double]] {
        guard width > 0 else { return [] }
        return stride(from: 0, to: values.count, by: width).map { start in
            let row = values[start..<min(start + width, values.count)]
            switch kind {
            case .logits: return softmax(row)
            case .probabilities: return Array(row)
            case .auto: return isDistribution(row) ? Array(row) : softmax(row)
            }
        }
    }

    /// The index of the row's largest value (the first on ties, as NumPy's argmax).
    package static func argmax<C: Collection>(_ row: C) -> Int where C.Element == Double, C.Index == Int {
        var best = row.startIndex
        for j in row.indices.dropFirst() where row[j] > row[best] { best = j }
        return best - row.startIndex
    }

    /// The argmax of each row of a row-major `[rows, width]` array.
    package static func argmax(_ values: [Double], width: Int) -> [Int] {
        guard width > 0 else { return [] }
        return stride(from: 0, to: values.count, by: width).map { argmax(values[$0..<min($0 + width, values.count)]) }
    }

    /// The row's indices from the largest value down (ties: the lower index first), as a top-k list reads.
    package static func ranked(_ row: [Double]) -> [Int] {
        row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
    }
}

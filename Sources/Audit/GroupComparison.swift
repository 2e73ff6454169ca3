import TensorCore

/// How attention differs between groups of samples (the seed's `compare_groups`).
///
/// - **Overlap** of two groups is the histogram intersection `Σᵢ min(pᵢ, qᵢ)` of their mean maps,
///   each normalized to unit mass: 1 when both groups spread attention identically over the image,
///   0 when they attend to disjoint pixels. With more than two groups, ``overlapScore`` is the
///   smallest pairwise overlap (the most divergent pair).
/// - **Divergence** is the per-pixel difference of two group means, with a significance mask: a
///   permutation test over samples (group labels shuffled) on a grid of at most 32x32 cells,
///   Benjamini–Hochberg at a 5% false-discovery rate, so noise is not reported as divergence.
///
/// Per-image min-max normalization (pytorch-grad-cam's default) makes every map span [0, 1],
/// so a weak, diffuse map looks as strong as a sharp one and magnitudes cannot be compared
/// across images; mass normalization of the means and raw maps (`--maps raw`) avoid that.
public struct AttentionOverlapResult: Sendable {
    /// The smallest pairwise overlap, in [0, 1].
    public let overlapScore: Double
    /// Overlap of every pair of groups.
    public let pairwiseOverlap: [GroupPair: Double]
    /// Mean map of each group, `height * width` values.
    public let groupHeatmaps: [String: [Float]]
    /// `mean(first) − mean(second)` of ``divergencePair``, `height * width` values.
    public let divergenceRegions: [Float]
    /// The pair the divergence compares: the two groups, or the least overlapping pair of several.
    public let divergencePair: GroupPair
    /// Pixels whose difference is significant.
    public let significant: [Bool]
    /// Each group against all others: the difference of means and its significance mask.
    public let oneVersusRest: [String: (difference: [Float], significant: [Bool])]
    /// The maps' height.
    public let height: Int
    /// The maps' width.
    public let width: Int
    /// A plain sentence about the comparison.
    public let summary: String
}

/// An ordered pair of group names.
public struct GroupPair: Hashable, Sendable, CustomStringConvertible {
    /// The first group.
    public let first: String
    /// The second group, or `rest` for all the others.
    public let second: String

    /// A pair of groups.
    public init(first: String, second: String) {
        self.first = first
        self.second = second
    }

    /// `first vs second`.
    public var description: String { "\(first) vs \(second)" }
}

/// Settings of the divergence test.
public struct ComparisonOptions: Sendable {
    /// Label permutations of the per-pixel test.
    public var permutations = 1000
    /// The Benjamini-Hochberg rate over the pixels.
    public var falseDiscoveryRate = 0.05
    /// Cells per side of the grid the test runs on.
    public var maxGrid = 32
    /// Seeds the permutations.
    public var seed: UInt64 = 0x5EED_CA11

    /// The defaults.
    public init() {}
}

extension AttentionOverlapResult {
    /// Compares `[N, H, W]` heatmaps between the groups `groups[n]`.
    public static func compare(_ heatmaps: Tensor, groups: [String], options: ComparisonOptions = ComparisonOptions()) throws
        -> AttentionOverlapResult
    {
        guard heatmaps.rank == 3, heatmaps.shape[0] == groups.count else {
            throw AuditError.invalid("heatmaps must be [N, H, W] with one group per sample; got \(heatmaps.shape) and \(groups.count) groups")
        }
        let (count, height, width) = (heatmaps.shape[0], heatmaps.shape[1], heatmaps.shape[2])
        let values = try heatmaps.converted(to: .float32).scalars(as: Float.self)
        let grid = PoolingGrid(height: height, width: width, maxCells: options.maxGrid)
        var sums: [String: [Double]] = [:]
        var counts: [String: Int] = [:]
        var pooled: [Float] = []
        for n in 0..<count {
            let map = Array(values[n * height * width..<(n + 1) * height * width])
            sums[groups[n], default: [Double](repeating: 0, count: height * width)].addInPlace(map)
            counts[groups[n], default: 0] += 1
            pooled += grid.pool(map)
        }
        let means = sums.mapValues { $0 }.reduce(into: [String: [Float]]()) { result, entry in
            result[entry.key] = entry.value.map { Float($0 / Double(counts[entry.key] ?? 1)) }
        }
        return try compare(means: means, counts: counts, pooled: pooled, groups: groups, grid: grid, options: options)
    }

    /// The comparison from group means and sizes and per-sample pooled maps (how audits call it,
    /// so that they never hold every full-resolution map). The pooled maps may be a subset of the
    /// samples (an audit's every k-th): the permutation test runs on them, the means and the
    /// groups' weights against the rest come from all.
    static func compare(
        means: [String: [Float]], counts: [String: Int], pooled: [Float], groups: [String], grid: PoolingGrid, options: ComparisonOptions
    ) throws -> AttentionOverlapResult {
        let names = means.keys.sorted()
        guard names.count >= 2 else { throw AuditError.invalid("comparing attention needs at least two groups, got \(names)") }
        var overlaps: [GroupPair: Double] = [:]
        for (i, a) in names.enumerated() {
            for b in names[(i + 1)...] { overlaps[GroupPair(first: a, second: b)] = overlap(means[a] ?? [], means[b] ?? []) }
        }
        let pair = overlaps.min { ($0.value, $0.key.description) < ($1.value, $1.key.description) }?.key
            ?? GroupPair(first: names[0], second: names[1])

        func test(_ selected: [Bool], against rest: [Bool], seed: UInt64) -> [Bool] {
            // Samples of the two sides only; true marks the first side.
            var rows: [Float] = []
            var labels: [Bool] = []
            for (n, group) in groups.enumerated() where selected[n] || rest[n] {
                _ = group
                rows += pooled[n * grid.cells..<(n + 1) * grid.cells]
                labels.append(selected[n])
            }
            let p = Statistics.permutationPValues(
                rows, samples: labels.count, features: grid.cells, inGroup: labels, permutations: options.permutations, seed: seed)
            return grid.expand(Statistics.benjaminiHochberg(p, q: options.falseDiscoveryRate))
        }
        let inFirst = groups.map { $0 == pair.first }
        let inSecond = groups.map { $0 == pair.second }
        let significant = test(inFirst, against: inSecond, seed: options.seed)
        let divergence = zip(means[pair.first] ?? [], means[pair.second] ?? []).map { $0 - $1 }

        var versusRest: [String: (difference: [Float], significant: [Bool])] = [:]
        if names.count > 2 {
            for (index, name) in names.enumerated() {
                let members = groups.map { $0 == name }
                let others = members.map { !$0 }
                let total = names.filter { $0 != name }.reduce(0) { $0 + (counts[$1] ?? 0) }
                var rest = [Double](repeating: 0, count: grid.height * grid.width)
                for other in names where other != name {
                    let weight = Double(counts[other] ?? 0) / Double(max(total, 1))
                    for (i, value) in (means[other] ?? []).enumerated() { rest[i] += weight * Double(value) }
                }
                let difference = zip(means[name] ?? [], rest).map { $0 - Float($1) }
                versusRest[name] = (difference, test(members, against: others, seed: options.seed &+ UInt64(index + 1)))
            }
        } else {
            versusRest[pair.first] = (divergence, significant)
        }
        let overlapScore = overlaps[pair] ?? 1
        let share = Double(significant.filter { $0 }.count) / Double(max(significant.count, 1))
        let summary =
            "Attention overlap between \(pair.first) and \(pair.second) is \(format(overlapScore)) (1 means the same distribution of attention); "
            + (share > 0
                ? "\(format(100 * share, digits: 1))% of the image differs significantly between them (permutation test, FDR \(format(100 * options.falseDiscoveryRate, digits: 0))%)."
                : "no region differs significantly between them (permutation test, FDR \(format(100 * options.falseDiscoveryRate, digits: 0))%).")
        return AttentionOverlapResult(
            overlapScore: overlapScore, pairwiseOverlap: overlaps, groupHeatmaps: means, divergenceRegions: divergence,
            divergencePair: pair, significant: significant, oneVersusRest: versusRest, height: grid.height, width: grid.width,
            summary: summary)
    }

    /// Histogram intersection of two maps after normalizing each to unit mass (negatives count as 0).
    public static func overlap(_ a: [Float], _ b: [Float]) -> Double {
        let sa = a.reduce(0.0) { $0 + Double(max($1, 0)) }
        let sb = b.reduce(0.0) { $0 + Double(max($1, 0)) }
        guard sa > 0, sb > 0 else { return sa == sb ? 1 : 0 }
        return zip(a, b).reduce(0.0) { $0 + min(Double(max($1.0, 0)) / sa, Double(max($1.1, 0)) / sb) }
    }
}

/// Cells of at most `maxCells` x `maxCells` over an image, for statistics that need a coarser grid.
struct PoolingGrid: Sendable, Equatable {
    let height: Int
    let width: Int
    let cellSize: Int
    let rows: Int
    let columns: Int
    var cells: Int { rows * columns }

    init(height: Int, width: Int, maxCells: Int) {
        self.height = height
        self.width = width
        cellSize = max(1, (max(height, width) + maxCells - 1) / maxCells)
        rows = (height + cellSize - 1) / cellSize
        columns = (width + cellSize - 1) / cellSize
    }

    /// The mean of each cell.
    func pool(_ map: [Float]) -> [Float] {
        var sums = [Double](repeating: 0, count: cells)
        var counts = [Int](repeating: 0, count: cells)
        for y in 0..<height {
            for x in 0..<width {
                let cell = (y / cellSize) * columns + x / cellSize
                sums[cell] += Double(map[y * width + x])
                counts[cell] += 1
            }
        }
        return zip(sums, counts).map { Float($0 / Double(max($1, 1))) }
    }

    /// The number of pixels in each cell (cells on the right and bottom edges may be smaller).
    var pixelsPerCell: [Int] {
        (0..<cells).map { cell in
            let (row, column) = (cell / columns, cell % columns)
            return (min(height, (row + 1) * cellSize) - row * cellSize) * (min(width, (column + 1) * cellSize) - column * cellSize)
        }
    }

    /// A per-cell flag spread back over the pixels of each cell.
    func expand(_ flags: [Bool]) -> [Bool] {
        (0..<height * width).map { flags[((($0 / width) / cellSize) * columns) + ($0 % width) / cellSize] }
    }
}

extension Array where Element == Double {
    mutating func addInPlace(_ values: [Float]) { for i in indices { self[i] += Double(values[i]) } }
}

/// Fixed decimals, for sentences and reports.
func format(_ value: Double, digits: Int = 2) -> String {
    let scale = pow10(digits)
    let rounded = (value * scale).rounded() / scale
    var text = "\(rounded)"
    if let dot = text.firstIndex(of: ".") {
        let decimals = text.distance(from: dot, to: text.endIndex) - 1
        if decimals < digits { text += String(repeating: "0", count: digits - decimals) }
        if digits == 0 { text = String(text[..<dot]) }
    } else if digits > 0 {
        text += "." + String(repeating: "0", count: digits)
    }
    return text
}

private func pow10(_ n: Int) -> Double { (0..<n).reduce(1.0) { result, _ in result * 10 } }

/// Errors of audits and group comparisons.
public enum AuditError: Error, CustomStringConvertible, Equatable {
    /// The input or settings are unusable; the text says why.
    case invalid(String)
    /// The problem in words.
    public var description: String {
        switch self {
        case .invalid(let reason): reason
        }
    }
}

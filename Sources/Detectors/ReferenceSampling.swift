/// NumPy's legacy `RandomState` (the Mersenne Twister MT19937 seeded from one integer), as far as
/// the reference detectors use it: `permutation` and `choice(..., replace=False)`.
///
/// The reference draws its holdout splits from this generator (scikit-learn's
/// `train_test_split(..., random_state=seed)` and `np.random.seed(seed); np.random.permutation`),
/// and which samples land in the holdout moves a probe's score by a few hundredths on a few
/// hundred samples; drawing the same split makes the scores comparable exactly. PyTorch's CPU
/// generator runs the same engine (the audit's `TorchGenerator`).
package struct LegacyRandomState {
    private var state = [UInt32](repeating: 0, count: 624)
    private var position = 624

    /// `numpy.random.RandomState(seed)` for a seed in `0..<2³²` (MT19937's `init_genrand`).
    package init(seed: UInt32) {
        state[0] = seed
        for i in 1..<624 {
            let previous = state[i - 1]
            state[i] = 1_812_433_253 &* (previous ^ (previous >> 30)) &+ UInt32(i)
        }
    }

    /// The next 32 tempered bits.
    package mutating func nextUInt32() -> UInt32 {
        if position >= 624 { twist() }
        var y = state[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        for i in 0..<624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7FFF_FFFF)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : 0x9908_B0DF)
        }
        position = 0
    }

    /// A uniform integer in `0...max` by masked rejection (NumPy's legacy `random_interval`).
    mutating func interval(_ max: Int) -> Int {
        guard max > 0 else { return 0 }
        var mask = UInt64(max)
        for shift in [1, 2, 4, 8, 16, 32] { mask |= mask >> UInt64(shift) }
        if max <= 0xFFFF_FFFF {
            while true {
                let value = UInt64(nextUInt32()) & mask
                if value <= UInt64(max) { return Int(value) }
            }
        }
        while true {
            let value = ((UInt64(nextUInt32()) << 32) | UInt64(nextUInt32())) & mask
            if value <= UInt64(max) { return Int(value) }
        }
    }

    /// `permutation(count)`: `0..<count` shuffled by Fisher–Yates from the back.
    mutating func permutation(_ count: Int) -> [Int] {
        shuffled(Array(0..<count))
    }

    /// `permutation(array)` (NumPy's legacy `shuffle` of a copy).
    mutating func shuffled<T>(_ values: [T]) -> [T] {
        var result = values
        for i in stride(from: result.count - 1, to: 0, by: -1) { result.swapAt(i, interval(i)) }
        return result
    }
}

/// The reference's holdout splits.
enum ReferenceSplit {
    /// scikit-learn's `train_test_split(X, y, test_size:, stratify: y, random_state: seed)`, that is
    /// one split of `StratifiedShuffleSplit`: per class, the share of the test set closest to its
    /// share of the data (ties between classes broken at random), members drawn by permutation.
    ///
    /// - Parameter classes: Each sample's class, `0..<classCount`, numbered in sorted order of the
    ///   class names (as `np.unique` numbers them).
    /// - Returns: Train and test indices in the order scikit-learn returns them.
    static func stratified(classes: [Int], classCount: Int, testSize: Double, seed: UInt32) throws -> (train: [Int], test: [Int]) {
        let n = classes.count
        let testCount = Int((testSize * Double(n)).rounded(.up))
        let trainCount = n - testCount
        var counts = [Int](repeating: 0, count: classCount)
        for c in classes { counts[c] += 1 }
        if let small = counts.firstIndex(where: { $0 < 2 }) {
            throw DetectorError.invalidInput("group #\(small + 1) has \(counts[small]) sample(s); a stratified holdout needs at least 2 per group")
        }
        guard trainCount >= classCount, testCount >= classCount else {
            throw DetectorError.invalidInput("\(n) samples are too few for a stratified \(Int(testSize * 100))% holdout of \(classCount) groups")
        }
        // Members of each class in index order (a stable sort by class).
        var members = [[Int]](repeating: [], count: classCount)
        for (i, c) in classes.enumerated() { members[c].append(i) }

        var random = LegacyRandomState(seed: seed)
        let trainPerClass = approximateMode(counts, draws: trainCount, random: &random)
        let testPerClass = approximateMode(zip(counts, trainPerClass).map { $0 - $1 }, draws: testCount, random: &random)
        var train: [Int] = []
        var test: [Int] = []
        for c in 0..<classCount {
            let order = random.permutation(counts[c]).map { members[c][$0] }
            train += order[0..<trainPerClass[c]]
            test += order[trainPerClass[c]..<trainPerClass[c] + testPerClass[c]]
        }
        return (random.shuffled(train), random.shuffled(test))
    }

    /// scikit-learn's `_approximate_mode`: `draws` spread over classes in proportion to `counts`,
    /// floored, the remainder given to the largest fractional parts (ties drawn at random).
    static func approximateMode(_ counts: [Int], draws: Int, random: inout LegacyRandomState) -> [Int] {
        let total = Double(counts.reduce(0, +))
        let continuous = counts.map { Double($0) / total * Double(draws) }
        var floored = continuous.map { $0.rounded(.down) }
        var needed = Int(Double(draws) - floored.reduce(0, +))
        guard needed > 0 else { return floored.map { Int($0) } }
        let remainder = zip(continuous, floored).map { $0 - $1 }
        for value in Set(remainder).sorted(by: >) {
            let tied = remainder.indices.filter { remainder[$0] == value }
            let take = min(tied.count, needed)
            for k in random.permutation(tied.count).prefix(take) { floored[tied[k]] += 1 }
            needed -= take
            if needed == 0 { break }
        }
        return floored.map { Int($0) }
    }

    /// The HBAC detector's split: `np.random.seed(seed)`, a permutation of all samples, the first
    /// `Int(n · testSize)` of it for testing.
    static func permuted(count: Int, testSize: Double, seed: UInt32) -> (train: [Int], test: [Int]) {
        var random = LegacyRandomState(seed: seed)
        let order = random.permutation(count)
        let testCount = Int(Double(count) * testSize)
        return (Array(order[testCount...]), Array(order[..<testCount]))
    }
}

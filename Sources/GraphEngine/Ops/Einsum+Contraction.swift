import TensorCore

/// A tensor whose axes carry einsum labels.
struct LabeledTensor {
    var tensor: Tensor
    var labels: [Int]

    init(_ tensor: Tensor, _ labels: [Int]) {
        self.tensor = tensor
        self.labels = labels
    }
}

/// Evaluates an einsum over labeled operands: diagonals and private sums first, then pairwise
/// contractions, each one batched matrix product.
///
/// A contraction of `A` and `B` sorts their labels into batch (in both, kept), contracted (in
/// both, not kept), left (only `A`) and right (only `B`) and computes `C[batch, left, right] =
/// A[batch, left, contracted] · B[batch, contracted, right]`. Operands already laid out that way
/// (or with the last two groups swapped, which the product reads transposed) are not copied, so
/// attention's `bhqd,bhkd->bhqk` is one batched product straight from the inputs; the operands
/// swap when that puts the result in the output's order (`bchw,bkc->bkhw`).
enum EinsumContraction {
    static func evaluate(_ operands: [LabeledTensor], output: [Int]) throws -> Tensor {
        guard !operands.isEmpty else { throw OpError("Einsum needs at least one operand") }
        // Extents per label; 1 broadcasts against any extent, as in NumPy.
        var sizes: [Int: Int] = [:]
        for operand in operands {
            for (label, size) in zip(operand.labels, operand.tensor.shape) {
                guard let known = sizes[label], known != size else {
                    sizes[label] = size
                    continue
                }
                guard known == 1 || size == 1 else {
                    throw OpError("subscript \(name(label)) has extents \(known) and \(size)")
                }
                sizes[label] = known == 1 ? size : known
            }
        }
        var terms = try operands.map { try prepared($0, sizes: sizes) }
        for i in terms.indices {
            var needed = Set(output)
            for j in terms.indices where j != i { needed.formUnion(terms[j].labels) }
            terms[i] = try summed(terms[i], keeping: needed)
        }
        var result = terms[0]
        for j in terms.indices.dropFirst() {
            var keep = Set(output)
            for later in terms[(j + 1)...] { keep.formUnion(later.labels) }
            result = try contract(result, terms[j], keep: keep, preferred: j == terms.count - 1 ? output : nil)
        }
        return try arranged(result, as: output, sizes: sizes)
    }

    /// A label as the subscript it came from, for errors.
    static func name(_ label: Int) -> String {
        label < 256 ? "'\(Character(UnicodeScalar(UInt8(label))))'" : "'...' axis \(label - 256)"
    }

    /// The operand with its broadcast axes (extent 1 where another operand is longer) dropped and
    /// repeated labels reduced to their diagonal.
    private static func prepared(_ operand: LabeledTensor, sizes: [Int: Int]) throws -> LabeledTensor {
        var tensor = operand.tensor
        var labels = operand.labels
        let dropped = labels.indices.filter { tensor.shape[$0] == 1 && sizes[labels[$0]] != 1 }
        if !dropped.isEmpty {
            let kept = labels.indices.filter { !dropped.contains($0) }
            tensor = try tensor.reshaped(kept.map { tensor.shape[$0] })
            labels = kept.map { labels[$0] }
        }
        var distinct: [Int] = []
        for label in labels where !distinct.contains(label) { distinct.append(label) }
        guard distinct.count < labels.count else { return LabeledTensor(tensor, labels) }
        let strides = Shape.strides(tensor.shape)
        var diagonal = [Int](repeating: 0, count: distinct.count)
        var extents = [Int](repeating: 0, count: distinct.count)
        for (axis, label) in labels.enumerated() {
            let index = distinct.firstIndex(of: label) ?? 0
            guard diagonal[index] == 0 || extents[index] == tensor.shape[axis] else {
                throw OpError("repeated subscript \(name(label)) has extents \(extents[index]) and \(tensor.shape[axis])")
            }
            diagonal[index] += strides[axis]
            extents[index] = tensor.shape[axis]
        }
        return LabeledTensor(try stridedCopy(tensor, shape: extents, strides: diagonal), distinct)
    }

    /// The term with every label outside `keeping` summed away.
    private static func summed(_ term: LabeledTensor, keeping: Set<Int>) throws -> LabeledTensor {
        let kept = term.labels.indices.filter { keeping.contains(term.labels[$0]) }
        guard kept.count < term.labels.count else { return term }
        var target = term.tensor.shape
        for axis in term.labels.indices where !kept.contains(axis) { target[axis] = 1 }
        let sum = try term.tensor.summed(toShape: target)
        return LabeledTensor(try sum.reshaped(kept.map { target[$0] }), kept.map { term.labels[$0] })
    }

    /// `term` with its axes in `order` (a permutation of its labels).
    private static func permuted(_ term: LabeledTensor, to order: [Int]) throws -> Tensor {
        guard term.labels != order else { return term.tensor }
        let perm = order.map { label in term.labels.firstIndex(of: label) ?? 0 }
        return try term.tensor.transposed(perm)
    }

    /// The contraction of `a` and `b` over their shared labels outside `keep`, laid out
    /// `[batch, left, right]`; `preferred` is the order the caller wants at the end.
    private static func contract(_ a: LabeledTensor, _ b: LabeledTensor, keep: Set<Int>, preferred: [Int]?) throws -> LabeledTensor {
        let a = try summed(a, keeping: keep.union(b.labels))
        let b = try summed(b, keeping: keep.union(a.labels))
        let batch = a.labels.filter { b.labels.contains($0) && keep.contains($0) }
        let contracted = a.labels.filter { b.labels.contains($0) && !keep.contains($0) }
        let left = a.labels.filter { !b.labels.contains($0) }
        let right = b.labels.filter { !a.labels.contains($0) }
        if let preferred, preferred != batch + left + right, preferred == batch + right + left {
            return try contract(b, a, keep: keep, preferred: nil)
        }
        func extent(_ labels: [Int], _ term: LabeledTensor) -> Int {
            labels.reduce(1) { $0 * term.tensor.shape[term.labels.firstIndex(of: $1) ?? 0] }
        }
        let (batchCount, m, k, n) = (extent(batch, a), extent(left, a), extent(contracted, a), extent(right, b))
        /// The operand as the product reads it: as stored, transposed by the product itself when its
        /// axes already run `batch, swapped`, else permuted to `batch, natural`.
        func operand(_ term: LabeledTensor, natural: [Int], swapped: [Int], free: [Int]) throws -> (Tensor, Bool) {
            term.labels == batch + swapped && !free.isEmpty && !contracted.isEmpty
                ? (term.tensor, true) : (try permuted(term, to: batch + natural), false)
        }
        let (left0, transposeA) = try operand(a, natural: left + contracted, swapped: contracted + left, free: left)
        let (right0, transposeB) = try operand(b, natural: contracted + right, swapped: right + contracted, free: right)
        let shape = (batch + left).map { a.tensor.shape[a.labels.firstIndex(of: $0) ?? 0] }
            + right.map { b.tensor.shape[b.labels.firstIndex(of: $0) ?? 0] }
        let product = try batchedProduct(
            left0, right0, batch: batchCount, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB, shape: shape)
        return LabeledTensor(product, batch + left + right)
    }

    /// `C[i] = op(A[i]) · op(B[i])` for each of `batch` stacked matrices.
    private static func batchedProduct(
        _ a: Tensor, _ b: Tensor, batch: Int, m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool, shape: [Int]
    ) throws -> Tensor {
        let output = try Tensor(zeros: a.dtype, shape: shape)
        guard output.count > 0 else { return output }
        func float<T: GEMMScalar>(_ type: T.Type) {
            let (pa, pb, pc) = (a.unsafeElements(as: T.self), b.unsafeElements(as: T.self), output.unsafeMutableElements(as: T.self))
            // Many small products (attention heads) go one per thread; a few large ones split inside.
            let perThread = batch >= Parallel.width
            Parallel.forEach(batch, grain: perThread ? 1 : batch) { range in
                for i in range {
                    T.gemm(
                        transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 1,
                        a: pa.address(at: i * m * k, count: m * k), lda: transposeA ? m : k,
                        b: pb.address(at: i * k * n, count: k * n), ldb: transposeB ? k : n, beta: 0,
                        c: pc.address(at: i * m * n, count: m * n), ldc: n, threaded: !perThread)
                }
            }
        }
        func integer<T: ArithmeticScalar>(_ type: T.Type) {
            let (pa, pb, pc) = (a.unsafeElements(as: T.self), b.unsafeElements(as: T.self), output.unsafeMutableElements(as: T.self))
            for i in 0..<batch {
                let (ba, bb) = (pa.address(at: i * m * k, count: m * k), pb.address(at: i * k * n, count: k * n))
                let bc = pc.address(at: i * m * n, count: m * n)
                for row in 0..<m {
                    for column in 0..<n {
                        var sum = T(int64Value: 0)
                        for p in 0..<k {
                            let x = transposeA ? ba[p * m + row] : ba[row * k + p]
                            let y = transposeB ? bb[column * k + p] : bb[p * n + column]
                            sum = T.add(sum, T.multiply(x, y))
                        }
                        bc[row * n + column] = sum
                    }
                }
            }
        }
        try withExtendedLifetime((a, b)) {
            if a.dtype == .float32 || a.dtype == .float64 {
                try withGEMMType(a.dtype, "Einsum") { float($0) }
            } else {
                try withArithmeticType(a.dtype, "Einsum") { integer($0) }
            }
        }
        return output
    }

    /// `term` laid out in `output` order; output labels it lacks (extent 1) are broadcast.
    private static func arranged(_ term: LabeledTensor, as output: [Int], sizes: [Int: Int]) throws -> Tensor {
        if term.labels == output { return term.tensor }
        let strides = Shape.strides(term.tensor.shape)
        let viewStrides = output.map { label in term.labels.firstIndex(of: label).map { strides[$0] } ?? 0 }
        let shape = output.map { label in term.labels.firstIndex(of: label).map { term.tensor.shape[$0] } ?? sizes[label] ?? 1 }
        return try stridedCopy(term.tensor, shape: shape, strides: viewStrides)
    }
}

import TensorCore

// The reduction loop every reduction shares (ReduceSum to ReduceMin, and Tile's gradient): a
// layout that pairs each input element with its output element, and folds as types, so each
// (fold, element type) pair specializes into a plain loop.

/// The shapes of one reduction, and the loop that visits every input element with the offset
/// of the output element it folds into.
struct ReductionLayout {
    /// The input's shape with the reduced axes set to 1 (the output's shape under `keepdims`).
    let kept: [Int]
    let outputShape: [Int]
    let outputCount: Int
    /// Input elements per output element.
    let reducedCount: Int
    /// Over `[input, kept]`; the input is contiguous, so each row walks it with stride 1.
    private let loop: BroadcastLoop

    init(_ shape: [Int], reduced: [Bool], keepDims: Bool) throws {
        kept = shape.indices.map { reduced[$0] ? 1 : shape[$0] }
        outputShape = keepDims ? kept : shape.indices.filter { !reduced[$0] }.map { shape[$0] }
        outputCount = try Shape.elementCount(kept)
        reducedCount = shape.indices.reduce(1) { reduced[$1] ? $0 * shape[$1] : $0 }  // divides an existing tensor's count
        loop = try BroadcastLoop([shape, kept])
    }

    /// Calls `body(input, output, outputStride, length)` per row of input elements: input
    /// elements `input + k` fold into output `output + k * outputStride` for `k < length`
    /// (the stride is 0 when the row runs along a reduced axis).
    func forEachRow(_ body: (_ input: Int, _ output: Int, _ outputStride: Int, _ length: Int) -> Void) {
        let (length, step) = (loop.length, loop.innerStrides[1])
        loop.forEachRow { offsets, _ in body(offsets[0], offsets[1], step, length) }
    }

    /// Folds the elements of `x` into one accumulator per output element.
    func fold<F: ReductionFold>(_ x: Tensor, _ fold: F.Type) throws -> [F.Accumulator] {
        var results = [F.Accumulator](repeating: F.initial, count: outputCount)
        try x.withUnsafeBuffer(as: F.Element.self) { input in
            results.withUnsafeMutableBufferPointer { out in
                forEachRow { i, o, step, length in
                    if step == 0 {
                        var accumulator = out[o]
                        for k in 0..<length { accumulator = F.combine(accumulator, input[i + k]) }
                        out[o] = accumulator
                    } else {
                        for k in 0..<length { out[o + k] = F.combine(out[o + k], input[i + k]) }
                    }
                }
            }
        }
        return results
    }
}

/// Element types the reductions accept. Sums and products accumulate in `Accumulator`: Double
/// for floating-point types; Int64 for integers, whose wrap-around modulo the element width then
/// equals the element type's own.
protocol ReducibleScalar: ArithmeticScalar {
    associatedtype Accumulator: ArithmeticScalar
    var accumulated: Accumulator { get }
    init(accumulated: Accumulator)
    /// The identities of maximum and minimum: ∓infinity, or the type's extremes.
    static var lowest: Self { get }
    static var highest: Self { get }
}

extension Float: ReducibleScalar {
    var accumulated: Double { Double(self) }
    init(accumulated: Double) { self.init(accumulated) }
    static var lowest: Float { -.infinity }
    static var highest: Float { .infinity }
}

extension Double: ReducibleScalar {
    var accumulated: Double { self }
    init(accumulated: Double) { self = accumulated }
    static var lowest: Double { -.infinity }
    static var highest: Double { .infinity }
}

extension ReducibleScalar where Self: FixedWidthInteger {
    var accumulated: Int64 { Int64(truncatingIfNeeded: self) }
    init(accumulated: Int64) { self.init(truncatingIfNeeded: accumulated) }
    static var lowest: Self { .min }
    static var highest: Self { .max }
}

extension Int64: ReducibleScalar {}
extension Int32: ReducibleScalar {}
extension Int8: ReducibleScalar {}
extension UInt8: ReducibleScalar {}

/// Dispatches `body` on the Swift type of a numeric `dtype`; float16 arrives widened, bool has no arithmetic.
func withReducibleType<R>(_ dtype: DType, _ op: String, _ body: (any ReducibleScalar.Type) throws -> R) throws -> R {
    switch dtype {
    case .float32: return try body(Float.self)
    case .float64: return try body(Double.self)
    case .int64: return try body(Int64.self)
    case .int32: return try body(Int32.self)
    case .int8: return try body(Int8.self)
    case .uint8: return try body(UInt8.self)
    case .float16, .bool: throw OpError("\(op) does not support \(dtype) tensors")
    }
}

/// How a reduction folds input elements into an accumulator: a type, so each (fold, element
/// type) pair specializes into a plain loop.
protocol ReductionFold {
    associatedtype Element: TensorScalar
    associatedtype Accumulator
    static var initial: Accumulator { get }
    static func combine(_ accumulator: Accumulator, _ x: Element) -> Accumulator
}

enum SumFold<T: ReducibleScalar>: ReductionFold {
    static var initial: T.Accumulator { .zero }
    static func combine(_ a: T.Accumulator, _ x: T) -> T.Accumulator { T.Accumulator.add(a, x.accumulated) }
}

enum SumOfSquaresFold<T: ReducibleScalar>: ReductionFold {
    static var initial: T.Accumulator { .zero }
    static func combine(_ a: T.Accumulator, _ x: T) -> T.Accumulator {
        let v = x.accumulated
        return T.Accumulator.add(a, T.Accumulator.multiply(v, v))
    }
}

enum SumOfMagnitudesFold<T: ReducibleScalar>: ReductionFold {
    static var initial: T.Accumulator { .zero }
    static func combine(_ a: T.Accumulator, _ x: T) -> T.Accumulator {
        let v = x.accumulated
        return T.Accumulator.add(a, v < .zero ? T.Accumulator.negate(v) : v)
    }
}

enum ProductFold<T: ReducibleScalar>: ReductionFold {
    static var initial: T.Accumulator { T.Accumulator(int64Value: 1) }
    static func combine(_ a: T.Accumulator, _ x: T) -> T.Accumulator { T.Accumulator.multiply(a, x.accumulated) }
}

/// Maximum with NaN propagating (NumPy's `maximum.reduce`, PyTorch's `amax`).
enum MaximumFold<T: ReducibleScalar>: ReductionFold {
    static var initial: T { .lowest }
    static func combine(_ a: T, _ x: T) -> T { x > a || x != x ? x : a }
}

enum MinimumFold<T: ReducibleScalar>: ReductionFold {
    static var initial: T { .highest }
    static func combine(_ a: T, _ x: T) -> T { x < a || x != x ? x : a }
}

/// The zeros among the folded elements and the product of the others: what ReduceProd's gradient needs.
enum ZerosAndProductFold<T: ReducibleScalar>: ReductionFold {
    static var initial: (zeros: Int, product: T.Accumulator) { (0, T.Accumulator(int64Value: 1)) }
    static func combine(_ a: (zeros: Int, product: T.Accumulator), _ x: T) -> (zeros: Int, product: T.Accumulator) {
        x == .zero ? (a.zeros + 1, a.product) : (a.zeros, T.Accumulator.multiply(a.product, x.accumulated))
    }
}

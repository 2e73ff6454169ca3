import Foundation
import ONNXModel
import TensorCore

// Normalization by a norm of neighbouring values: LRN (across nearby channels) and
// LpNormalization (along one axis).

extension OpRegistry {
    mutating func registerLocalNormalization() {
        register("LRN") { context in
            let size: Int = try context.node.requiredAttribute("size")
            guard size >= 1 else { throw context.invalid("size", "must be at least 1, got \(size)") }
            return LRN(
                size: size, alpha: Double(try context.attribute("alpha", default: Float(1e-4))),
                beta: Double(try context.attribute("beta", default: Float(0.75))),
                bias: Double(try context.attribute("bias", default: Float(1))))
        }
        register("LpNormalization") { context in
            let p = try context.attribute("p", default: 2)
            guard p == 1 || p == 2 else { throw context.invalid("p", "must be 1 or 2, got \(p)") }
            return LpNormalization(axis: try context.attribute("axis", default: -1), p: p)
        }
        widenForHalfPrecision(["LRN", "LpNormalization"])
    }
}

/// LRN and LpNormalization: an input read as three extents, normalized and differentiated by
/// float32 or float64 loops over that layout; forward and backward are shared.
protocol LocalNormalization: DifferentiableOperator {
    var opType: String { get }
    /// The three extents the loops walk, checked against the op's needs.
    func layout(_ shape: [Int]) throws -> (Int, Int, Int)
    func normalize<T: FloatKernelScalar>(_ x: UnsafePointer<T>, _ layout: (Int, Int, Int), into y: UnsafeMutablePointer<T>)
    func gradient<T: FloatKernelScalar>(
        _ x: UnsafePointer<T>, _ g: UnsafePointer<T>, _ layout: (Int, Int, Int), into gx: UnsafeMutablePointer<T>)
}

extension LocalNormalization {
    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let extents = try layout(x.shape)
        let y = try Tensor(uninitialized: x.dtype, shape: x.shape)
        func run<T: FloatKernelScalar>(_ type: T.Type) {
            normalize(x.unsafeElements(as: T.self).address(), extents, into: y.unsafeMutableElements(as: T.self).address())
        }
        try withExtendedLifetime(x) { try withFloatType(x.dtype, opType) { run($0) } }
        return [y]
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(0) }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let x = try step.input(0)
        let g = try step.gradient()
        let extents = try layout(x.shape)
        // Zeros: LpNormalization leaves the gradient of a zero norm's line at 0.
        let gx = try Tensor(zeros: x.dtype, shape: x.shape)
        func run<T: FloatKernelScalar>(_ type: T.Type) {
            gradient(
                x.unsafeElements(as: T.self).address(), g.unsafeElements(as: T.self).address(count: x.count), extents,
                into: gx.unsafeMutableElements(as: T.self).address())
        }
        try withExtendedLifetime((x, g)) { try withFloatType(x.dtype, opType) { run($0) } }
        return [gx]
    }
}

/// `LRN`: `y = x / (bias + alpha / size · Σ x²)^beta`, the sum over channels
/// `c − ⌊(size − 1)/2⌋ … c + ⌈(size − 1)/2⌉` at the same sample and position.
struct LRN: LocalNormalization {
    let size: Int
    let alpha: Double
    let beta: Double
    let bias: Double
    var opType: String { "LRN" }

    /// Each element's window of channels (at most all of them).
    func multiplyAdds(_ inputs: OpInputs) throws -> Int? {
        let x = try inputs.required(0)
        guard x.rank >= 2 else { return nil }
        return WorkBudget.product(x.count, min(size, x.shape[1]))
    }

    /// Channels below and above `c` in its window.
    var below: Int { (size - 1) / 2 }
    var above: Int { size / 2 }

    /// `[N, C, positions]` of an input shape.
    func layout(_ shape: [Int]) throws -> (Int, Int, Int) {
        guard shape.count >= 2 else { throw OpError("LRN needs an input of rank 2 or more, got \(shape)") }
        return (shape[0], shape[1], shape[2...].reduce(1, *))
    }

    /// `bias + alpha / size · Σ x²` over each element's channel window.
    @_specialize(where T == Float)
    private func denominators<T: FloatKernelScalar>(_ x: UnsafePointer<T>, _ n: Int, _ c: Int, _ positions: Int) -> [Double] {
        var result = [Double](repeating: 0, count: n * c * positions)
        let factor = alpha / Double(size)
        result.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }
            // A window reads at most c channels, whatever `size` a file declares (positions · size could overflow).
            Parallel.forEach(n * c, grain: max(1, 8_192 / max(positions * min(size, c), 1))) { planes in
                for plane in planes {
                    let (sample, channel) = (plane / c, plane % c)
                    let target = base + plane * positions
                    for other in max(0, channel - below)...min(c - 1, channel + above) {
                        let source = x + (sample * c + other) * positions
                        for i in 0..<positions {
                            let v = Double(source[i])
                            target[i] += v * v
                        }
                    }
                    for i in 0..<positions { target[i] = bias + factor * target[i] }
                }
            }
        }
        return result
    }

    @_specialize(where T == Float)
    func normalize<T: FloatKernelScalar>(_ x: UnsafePointer<T>, _ layout: (Int, Int, Int), into y: UnsafeMutablePointer<T>) {
        let (n, c, positions) = layout
        let s = denominators(x, n, c, positions)
        for i in 0..<n * c * positions { y[i] = T(Double(x[i]) * Foundation.pow(s[i], -beta)) }
    }

    /// With `s` the denominators: `∂x_k = g_k s_k^−β − (2 alpha beta / size) x_k Σ g_c x_c s_c^(−β−1)`,
    /// the sum over the channels `c` whose window holds `k`.
    @_specialize(where T == Float)
    func gradient<T: FloatKernelScalar>(
        _ x: UnsafePointer<T>, _ g: UnsafePointer<T>, _ layout: (Int, Int, Int), into gx: UnsafeMutablePointer<T>
    ) {
        let (n, c, positions) = layout
        let s = denominators(x, n, c, positions)
        let t = (0..<n * c * positions).map { Double(g[$0]) * Double(x[$0]) * Foundation.pow(s[$0], -beta - 1) }
        let factor = 2 * alpha * beta / Double(size)
        for sample in 0..<n {
            for channel in 0..<c {
                let base = (sample * c + channel) * positions
                for i in 0..<positions {
                    var sum = 0.0
                    for other in max(0, channel - above)...min(c - 1, channel + below) {
                        sum += t[(sample * c + other) * positions + i]
                    }
                    let k = base + i
                    gx[k] = T(Double(g[k]) * Foundation.pow(s[k], -beta) - factor * Double(x[k]) * sum)
                }
            }
        }
    }
}

/// `LpNormalization`: `y = x / ‖x‖_p` along `axis` (p = 1 or 2); a zero norm gives zeros, as
/// the spec (since opset 22) and onnxruntime define it.
struct LpNormalization: LocalNormalization {
    let axis: Int
    let p: Int
    var opType: String { "LpNormalization" }

    /// `[outer, extent, inner]` around the normalized axis.
    func layout(_ shape: [Int]) throws -> (Int, Int, Int) {
        let axis = try Shape.normalize(axis: self.axis, rank: shape.count)
        return (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    /// The norm of each (outer, inner) line.
    @_specialize(where T == Float)
    private func norms<T: FloatKernelScalar>(_ x: UnsafePointer<T>, _ outer: Int, _ extent: Int, _ inner: Int) -> [Double] {
        var result = [Double](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for k in 0..<extent {
                let row = x + (o * extent + k) * inner
                for i in 0..<inner {
                    let v = Double(row[i])
                    result[o * inner + i] += p == 1 ? abs(v) : v * v
                }
            }
        }
        return p == 1 ? result : result.map { $0.squareRoot() }
    }

    @_specialize(where T == Float)
    func normalize<T: FloatKernelScalar>(_ x: UnsafePointer<T>, _ layout: (Int, Int, Int), into y: UnsafeMutablePointer<T>) {
        let (outer, extent, inner) = layout
        let norm = norms(x, outer, extent, inner)
        for o in 0..<outer {
            for k in 0..<extent {
                let offset = (o * extent + k) * inner
                for i in 0..<inner {
                    let n = norm[o * inner + i]
                    y[offset + i] = n == 0 ? 0 : T(Double(x[offset + i]) / n)
                }
            }
        }
    }

    /// With `n` the norm: p = 2, `∂x = (g − y·Σ g y) / n`; p = 1, `∂x = g / n − sign(x) Σ g x / n²`;
    /// lines with a zero norm keep a zero gradient.
    @_specialize(where T == Float)
    func gradient<T: FloatKernelScalar>(
        _ x: UnsafePointer<T>, _ g: UnsafePointer<T>, _ layout: (Int, Int, Int), into gx: UnsafeMutablePointer<T>
    ) {
        let (outer, extent, inner) = layout
        let norm = norms(x, outer, extent, inner)
        var dots = [Double](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for k in 0..<extent {
                let offset = (o * extent + k) * inner
                for i in 0..<inner { dots[o * inner + i] += Double(g[offset + i]) * Double(x[offset + i]) }
            }
        }
        for o in 0..<outer {
            for k in 0..<extent {
                let offset = (o * extent + k) * inner
                for i in 0..<inner {
                    let n = norm[o * inner + i]
                    guard n > 0 else { continue }
                    let (v, gi, dot) = (Double(x[offset + i]), Double(g[offset + i]), dots[o * inner + i])
                    let sign: Double = v > 0 ? 1 : v < 0 ? -1 : 0
                    gx[offset + i] = T(p == 2 ? gi / n - v * dot / (n * n * n) : gi / n - sign * dot / (n * n))
                }
            }
        }
    }
}

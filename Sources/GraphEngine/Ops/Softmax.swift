import ONNXModel
import TensorCore

// Softmax and LogSoftmax, with the pre-13 convention (flatten to 2-D at `axis`, default 1) and
// the 13+ one (a single axis, default -1).

extension OpRegistry {
    mutating func registerSoftmax() {
        register("Softmax") { context in
            Softmax(axis: try context.attribute("axis", default: context.opset < 13 ? 1 : -1), flattens: context.opset < 13)
        }
    }

    mutating func registerLogSoftmax() {
        register("LogSoftmax") { context in
            Softmax(
                axis: try context.attribute("axis", default: context.opset < 13 ? 1 : -1), flattens: context.opset < 13,
                log: true)
        }
        widenForHalfPrecision(["LogSoftmax"])
    }
}

/// `Softmax` along one axis, or (before opset 13) over all axes from `axis` on; with `log`,
/// `LogSoftmax`: `x − max − log Σ e^(x − max)`, the same values as `log(Softmax(x))` without its
/// underflow to −∞.
struct Softmax: Operator {
    let axis: Int
    let flattens: Bool
    var log = false

    var opType: String { log ? "LogSoftmax" : "Softmax" }

    /// The input seen as `[outer, extent, inner]`, the normalization running over `extent`.
    private func layout(_ shape: [Int]) throws -> (outer: Int, extent: Int, inner: Int) {
        let axis = try Shape.normalize(axis: self.axis, rank: shape.count)
        let outer = shape[..<axis].reduce(1, *)
        return flattens
            ? (outer, shape[axis...].reduce(1, *), 1) : (outer, shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        // One value is its own maximum: e⁰ / e⁰ = 1, and its log 0.
        if x.rank == 0 { return [try Tensor.build(Float.self, shape: []) { $0[0] = log ? 0 : 1 }.converted(to: x.dtype)] }
        let (outer, extent, inner) = try layout(x.shape)
        if !log, x.dtype == .float32, inner == 1, let vector = Kernels.current.vector {
            let output = try Tensor(uninitialized: .float32, shape: x.shape)
            withExtendedLifetime(x) {
                vector.softmax(
                    x.unsafeElements(as: Float.self).address(),
                    into: output.unsafeMutableElements(as: Float.self).address(), rows: outer, extent: extent)
            }
            return [output]
        }
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try x.withUnsafeBuffer(as: T.self) { input in
                try Tensor.build(T.self, shape: x.shape, writesAll: true) { output in
                    guard let from = input.baseAddress, let to = output.baseAddress else { return }
                    softmax(from, to, outer: outer, extent: extent, inner: inner, log: log)
                }
            }
        }
        switch x.dtype {
        case .float32: return [try run(Float.self)]
        case .float64: return [try run(Double.self)]
        default: throw OpError("\(opType) needs float32, float16 or float64 input, got \(x.dtype)")
        }
    }
}

/// Softmax over the middle axis of an `[outer, extent, inner]` layout, max-subtracted so no
/// exponential overflows (with `log`, its logarithm, `x − max − log Σ e^(x − max)`); rows split
/// over the kernel threads. `input` and `output` may be the same buffer.
func softmax<T: FloatKernelScalar>(
    _ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<T>, outer: Int, extent: Int, inner: Int, log: Bool = false
) {
    Parallel.forEach(outer, grain: max(1, 8_192 / max(extent * inner, 1))) { rows in
        for o in rows {
            for i in 0..<inner {
                let base = o * extent * inner + i
                var largest = -T.infinity
                for k in 0..<extent { largest = max(largest, input[base + k * inner]) }
                // A row of −∞ gives NaN, as 0/0 would; keep −∞ − (−∞) out of the sum's way.
                if largest == -T.infinity { largest = 0 }
                var sum = T.zero
                if log {
                    for k in 0..<extent { sum += T.exp(input[base + k * inner] - largest) }
                    let offset = largest + T.log(sum)
                    for k in 0..<extent { output[base + k * inner] = input[base + k * inner] - offset }
                    continue
                }
                for k in 0..<extent {
                    let e = T.exp(input[base + k * inner] - largest)
                    output[base + k * inner] = e
                    sum += e
                }
                for k in 0..<extent { output[base + k * inner] /= sum }
            }
        }
    }
}

extension Softmax: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .outputs(0) }

    /// Softmax: `∂x = y ⊙ (g − Σ g ⊙ y)`; LogSoftmax: `∂x = g − e^y · Σ g` (e^y is the softmax);
    /// the sums over the same axis (or axis group before opset 13). A row whose gradient is all
    /// zero (attention rows a class-token readout does not reach) gets zeros, which the formulas
    /// give too where the row's outputs are finite.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let y = try step.output(0)
        guard y.rank > 0 else { return [try Tensor(zeros: g.dtype, shape: [])] }
        let (outer, extent, inner) = try layout(y.shape)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try y.withUnsafeBuffer(as: T.self) { outputs in
                try g.withUnsafeBuffer(as: T.self) { gradient in
                    try Tensor.build(T.self, shape: y.shape, writesAll: true) { out in
                        guard let yp = outputs.baseAddress, let gp = gradient.baseAddress, let op = out.baseAddress else { return }
                        Parallel.forEach(outer, grain: max(1, 8_192 / max(extent * inner, 1))) { rows in
                            for o in rows {
                                let row = o * extent * inner
                                if isZero(gp + row, count: extent * inner), allFinite(yp + row, count: extent * inner) {
                                    (op + row).update(repeating: 0, count: extent * inner)
                                    continue
                                }
                                for i in 0..<inner {
                                    let base = o * extent * inner + i
                                    var total = T.zero
                                    if log {
                                        for k in 0..<extent { total += gradient[base + k * inner] }
                                        for k in 0..<extent {
                                            let index = base + k * inner
                                            out[index] = gradient[index] - T.exp(outputs[index]) * total
                                        }
                                        continue
                                    }
                                    for k in 0..<extent { total += gradient[base + k * inner] * outputs[base + k * inner] }
                                    for k in 0..<extent {
                                        let index = base + k * inner
                                        out[index] = outputs[index] * (gradient[index] - total)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        switch g.dtype {
        case .float32: return [try run(Float.self)]
        case .float64: return [try run(Double.self)]
        default: throw OpError("\(opType) gradients need float32, float16 or float64, got \(g.dtype)")
        }
    }
}

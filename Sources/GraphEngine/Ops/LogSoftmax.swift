import ONNXModel
import TensorCore

// LogSoftmax, with Softmax's axis conventions: before opset 13 the input is flattened to 2-D at
// `axis` (default 1), from 13 on it works along the single axis `axis` (default -1).

extension OpRegistry {
    mutating func registerLogSoftmax() {
        register("LogSoftmax") { context in
            LogSoftmax(axis: try context.attribute("axis", default: context.opset < 13 ? 1 : -1), flattens: context.opset < 13)
        }
        widenForHalfPrecision(["LogSoftmax"])
    }
}

/// `LogSoftmax`: `x − max − log Σ e^(x − max)` along one axis (or, before opset 13, over all axes
/// from `axis` on); the same values as `log(Softmax(x))` without its underflow to −∞.
struct LogSoftmax: DifferentiableOperator {
    let axis: Int
    let flattens: Bool

    /// The input seen as `[outer, extent, inner]`, the reduction running over `extent`.
    private func layout(_ shape: [Int]) throws -> (outer: Int, extent: Int, inner: Int) {
        let axis = try Shape.normalize(axis: self.axis, rank: shape.count)
        let outer = shape[..<axis].reduce(1, *)
        return flattens
            ? (outer, shape[axis...].reduce(1, *), 1) : (outer, shape[axis], shape[(axis + 1)...].reduce(1, *))
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        // One value is its own maximum: log(e⁰ / e⁰) = 0.
        if x.rank == 0 { return [try Tensor(zeros: x.dtype, shape: [])] }
        let (outer, extent, inner) = try layout(x.shape)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try x.withUnsafeBuffer(as: T.self) { input in
                try Tensor.build(T.self, shape: x.shape, writesAll: true) { output in
                    guard let from = input.baseAddress, let to = output.baseAddress else { return }
                    logSoftmax(from, to, outer: outer, extent: extent, inner: inner)
                }
            }
        }
        switch x.dtype {
        case .float32: return [try run(Float.self)]
        case .float64: return [try run(Double.self)]
        default: throw OpError("LogSoftmax needs float32, float16 or float64 input, got \(x.dtype)")
        }
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .outputs(0) }

    /// `∂x = g − e^y · Σ g`, the sum over the same axis (or axis group): e^y is the softmax.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let y = try step.output(0)
        guard y.rank > 0 else { return [try Tensor(zeros: g.dtype, shape: [])] }
        let (outer, extent, inner) = try layout(y.shape)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try y.withUnsafeBuffer(as: T.self) { logs in
                try g.withUnsafeBuffer(as: T.self) { gradient in
                    try Tensor.build(T.self, shape: y.shape, writesAll: true) { out in
                        Parallel.forEach(outer, grain: max(1, 8_192 / max(extent * inner, 1))) { rows in
                            for o in rows {
                                for i in 0..<inner {
                                    let base = o * extent * inner + i
                                    var total = T.zero
                                    for k in 0..<extent { total += gradient[base + k * inner] }
                                    for k in 0..<extent {
                                        let index = base + k * inner
                                        out[index] = gradient[index] - T.exp(logs[index]) * total
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
        default: throw OpError("LogSoftmax gradients need float32, float16 or float64, got \(g.dtype)")
        }
    }
}

/// Log-softmax over the middle axis of an `[outer, extent, inner]` layout, max-subtracted so no
/// exponential overflows; rows split over the kernel threads.
private func logSoftmax<T: FloatKernelScalar>(
    _ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<T>, outer: Int, extent: Int, inner: Int
) {
    Parallel.forEach(outer, grain: max(1, 8_192 / max(extent * inner, 1))) { rows in
        for o in rows {
            for i in 0..<inner {
                let base = o * extent * inner + i
                var largest = -T.infinity
                for k in 0..<extent { largest = max(largest, input[base + k * inner]) }
                // A row of −∞ gives NaN, as log(0/0) would; keep −∞ − (−∞) out of the sum's way.
                if largest == -T.infinity { largest = 0 }
                var sum = T.zero
                for k in 0..<extent { sum += T.exp(input[base + k * inner] - largest) }
                let offset = largest + T.log(sum)
                for k in 0..<extent { output[base + k * inner] = input[base + k * inner] - offset }
            }
        }
    }
}

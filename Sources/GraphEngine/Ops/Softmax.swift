import ONNXModel
import TensorCore

// Softmax, with the pre-13 convention (flatten to 2-D at `axis`) and the 13+ one (a single axis).

extension OpRegistry {
    mutating func registerSoftmax() {
        register("Softmax") { context in
            Softmax(axis: try context.attribute("axis", default: context.opset < 13 ? 1 : -1), flattens: context.opset < 13)
        }
    }
}

/// `Softmax` along one axis, or (before opset 13) over all axes from `axis` on.
struct Softmax: Operator {
    let axis: Int
    let flattens: Bool

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        if x.rank == 0 { return [try Tensor.build(Float.self, shape: []) { $0[0] = 1 }.converted(to: x.dtype)] }
        let axis = try Shape.normalize(axis: self.axis, rank: x.rank)
        let outer = x.shape[..<axis].reduce(1, *)
        let extent = flattens ? x.shape[axis...].reduce(1, *) : x.shape[axis]
        let inner = flattens ? 1 : x.shape[(axis + 1)...].reduce(1, *)
        if x.dtype == .float32, inner == 1, let vector = Kernels.current.vector {
            let output = try Tensor(uninitialized: .float32, shape: x.shape)
            withExtendedLifetime(x) {
                vector.softmax(
                    x.storage.base.assumingMemoryBound(to: Float.self),
                    into: output.storage.base.assumingMemoryBound(to: Float.self), rows: outer, extent: extent)
            }
            return [output]
        }
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            let output = try Tensor(zeros: x.dtype, shape: x.shape)
            withExtendedLifetime(x) {
                softmax(
                    x.storage.base.assumingMemoryBound(to: T.self), output.storage.base.assumingMemoryBound(to: T.self),
                    outer: outer, extent: extent, inner: inner)
            }
            return output
        }
        return [try withFloatType(x.dtype, "Softmax") { try run($0) }]
    }
}

/// Softmax over the middle axis of an `[outer, extent, inner]` layout, max-subtracted for stability.
func softmax<T: FloatKernelScalar>(
    _ input: UnsafePointer<T>, _ output: UnsafeMutablePointer<T>, outer: Int, extent: Int, inner: Int
) {
    Parallel.forEach(outer, grain: max(1, 8_192 / max(extent * inner, 1))) { rows in
        for o in rows {
            for i in 0..<inner {
                let base = o * extent * inner + i
                var largest = -T.infinity
                for k in 0..<extent { largest = max(largest, input[base + k * inner]) }
                if largest == -T.infinity { largest = 0 }
                var sum = T.zero
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

    /// `∂x = y ⊙ (g − Σ g ⊙ y)`, the sum over the softmax axis (or axis group before opset 13).
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let y = try step.output(0)
        guard y.rank > 0 else { return [try Tensor(zeros: g.dtype, shape: [])] }
        let axis = try Shape.normalize(axis: self.axis, rank: y.rank)
        let outer = y.shape[..<axis].reduce(1, *)
        let extent = flattens ? y.shape[axis...].reduce(1, *) : y.shape[axis]
        let inner = flattens ? 1 : y.shape[(axis + 1)...].reduce(1, *)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try y.withUnsafeBuffer(as: T.self) { probabilities in
                try g.withUnsafeBuffer(as: T.self) { gradient in
                    try Tensor.build(T.self, shape: y.shape) { out in
                        for o in 0..<outer {
                            for i in 0..<inner {
                                let base = o * extent * inner + i
                                var dot = T.zero
                                for k in 0..<extent { dot += gradient[base + k * inner] * probabilities[base + k * inner] }
                                for k in 0..<extent {
                                    let index = base + k * inner
                                    out[index] = probabilities[index] * (gradient[index] - dot)
                                }
                            }
                        }
                    }
                }
            }
        }
        return [try withFloatType(g.dtype, "Softmax") { try run($0) }]
    }
}

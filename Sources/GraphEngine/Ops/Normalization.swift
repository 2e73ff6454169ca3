import ONNXModel
import TensorCore

// Normalization at inference time: BatchNormalization with running statistics, LayerNormalization
// (training-mode BatchNormalization is in Normalization+Training.swift).

extension OpRegistry {
    mutating func registerNormalization() {
        register("BatchNormalization") { context in
            // training_mode (opset 14+) normalizes with the batch's own statistics.
            if context.opset >= 14, try context.attribute("training_mode", default: 0) != 0 {
                return try TrainingBatchNormalization(context)
            }
            return BatchNormalization(epsilon: try context.attribute("epsilon", default: 1e-5))
        }
        register("LayerNormalization") { context in
            LayerNormalization(
                axis: try context.attribute("axis", default: -1), epsilon: try context.attribute("epsilon", default: 1e-5))
        }
    }
}

/// `BatchNormalization` (inference): `y = scale * (x - mean) / sqrt(var + epsilon) + bias` per channel (axis 1).
struct BatchNormalization: Operator {
    let epsilon: Float

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        guard x.rank >= 2 else { throw OpError("BatchNormalization needs rank 2 or more, got \(x.shape)") }
        let channels = x.shape[1]
        let parameters = try (1...4).map { try inputs.required($0).converted(to: x.dtype).doubles() }
        guard parameters.allSatisfy({ $0.count == channels }) else {
            throw OpError("scale, bias, mean and variance must each hold \(channels) values")
        }
        // Fold into y = x * a + b per channel, in double precision.
        let a = (0..<channels).map { parameters[0][$0] / (parameters[3][$0] + Double(epsilon)).squareRoot() }
        let b = (0..<channels).map { parameters[1][$0] - parameters[2][$0] * a[$0] }
        let size = x.shape[2...].reduce(1, *)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try x.withUnsafeBuffer(as: T.self) { input in
                try Tensor.build(T.self, shape: x.shape) { out in
                    for plane in 0..<(x.shape[0] * channels) {
                        let c = plane % channels
                        let (scale, shift) = (T(a[c]), T(b[c]))
                        for i in plane * size..<(plane + 1) * size { out[i] = input[i] * scale + shift }
                    }
                }
            }
        }
        return [try withFloatType(x.dtype, "BatchNormalization") { try run($0) }]
    }
}

/// `LayerNormalization`: normalizes over the axes from `axis` on; optional Mean and InvStdDev outputs.
struct LayerNormalization: Operator {
    let axis: Int
    let epsilon: Float

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let axis = try Shape.normalize(axis: self.axis, rank: x.rank)
        let rows = x.shape[..<axis].reduce(1, *)
        let size = x.shape[axis...].reduce(1, *)
        let normalizedShape = Array(x.shape[axis...])
        let scale = try inputs.required(1)
        let bias = inputs[2]
        for parameter in [scale, bias].compactMap({ $0 }) {
            guard (try? Shape.broadcast(parameter.shape, normalizedShape)) == normalizedShape else {
                throw OpError("scale/bias shape \(parameter.shape) does not broadcast to \(normalizedShape)")
            }
        }
        let statShape = Array(x.shape[..<axis]) + Array(repeating: 1, count: x.rank - axis)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> [Tensor?] {
            let gamma = try stridedCopy(scale.converted(to: x.dtype), shape: normalizedShape, strides: Shape.broadcastStrides(scale.shape, to: normalizedShape)).scalars(as: T.self)
            let beta = try bias.map {
                try stridedCopy($0.converted(to: x.dtype), shape: normalizedShape, strides: Shape.broadcastStrides($0.shape, to: normalizedShape)).scalars(as: T.self)
            }
            let means = try Tensor(zeros: x.dtype, shape: statShape)
            let inverseDeviations = try Tensor(zeros: x.dtype, shape: statShape)
            let meanOut = means.unsafeMutableElements(as: T.self)
            let inverseOut = inverseDeviations.unsafeMutableElements(as: T.self)
            let y = try x.withUnsafeBuffer(as: T.self) { input in
                try Tensor.build(T.self, shape: x.shape, writesAll: true) { out in
                    // Rows are independent, so they split over threads.
                    Parallel.forEach(rows, grain: max(1, 8_192 / max(size, 1))) { range in
                        for row in range {
                            let start = row * size
                            var sum = 0.0
                            for i in start..<start + size { sum += input[i].doubleValue }
                            let mean = sum / Double(size)
                            var squares = 0.0
                            for i in start..<start + size {
                                let d = input[i].doubleValue - mean
                                squares += d * d
                            }
                            let inverse = 1 / (squares / Double(size) + Double(epsilon)).squareRoot()
                            meanOut[row] = T(mean)
                            inverseOut[row] = T(inverse)
                            for i in 0..<size {
                                let normalized = T((input[start + i].doubleValue - mean) * inverse)
                                out[start + i] = normalized * gamma[i] + (beta?[i] ?? 0)
                            }
                        }
                    }
                }
            }
            return [y, means, inverseDeviations]
        }
        if x.dtype == .float32 {
            return try forwardFloat(x, scale: scale, bias: bias, rows: rows, normalizedShape: normalizedShape, statShape: statShape)
        }
        return try withFloatType(x.dtype, "LayerNormalization") { try run($0) }
    }

    /// The float32 forward: row sums in double precision over eight independent lanes (one running
    /// sum is a chain of dependent adds, 4 cycles per element), normalization eight lanes at a time.
    private func forwardFloat(
        _ x: Tensor, scale: Tensor, bias: Tensor?, rows: Int, normalizedShape: [Int], statShape: [Int]
    ) throws -> [Tensor?] {
        let size = normalizedShape.reduce(1, *)
        func parameter(_ tensor: Tensor) throws -> [Float] {
            try stridedCopy(
                tensor.converted(to: .float32), shape: normalizedShape,
                strides: Shape.broadcastStrides(tensor.shape, to: normalizedShape)
            ).scalars(as: Float.self)
        }
        let gamma = try parameter(scale)
        let beta = try bias.map(parameter) ?? [Float](repeating: 0, count: size)
        let means = try Tensor(uninitialized: .float32, shape: statShape)
        let inverses = try Tensor(uninitialized: .float32, shape: statShape)
        let meanOut = means.unsafeMutableElements(as: Float.self)
        let inverseOut = inverses.unsafeMutableElements(as: Float.self)
        let epsilon = Double(self.epsilon)
        let y = try x.withUnsafeBuffer(as: Float.self) { input in
            try gamma.withUnsafeBufferPointer { gamma in
                try beta.withUnsafeBufferPointer { beta in
                    try Tensor.build(Float.self, shape: x.shape, writesAll: true) { out in
                        guard let source = input.baseAddress, let target = out.baseAddress, let g = gamma.baseAddress,
                            let b = beta.baseAddress
                        else { return }
                        if let vector = Kernels.current.vector {
                            vector.layerNorm(
                                source, into: target, rows: rows, size: size, gamma: g, beta: b, epsilon: epsilon,
                                means: meanOut.address(count: rows), inverses: inverseOut.address(count: rows))
                            return
                        }
                        Parallel.forEach(rows, grain: max(1, 8_192 / max(size, 1))) { range in
                            for row in range {
                                let (p, o) = (source + row * size, target + row * size)
                                let whole = size / 8 * 8
                                func lanes(_ i: Int) -> SIMD8<Double> {
                                    SIMD8<Double>(UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self))
                                }
                                var sum = SIMD8<Double>.zero
                                for i in stride(from: 0, to: whole, by: 8) { sum += lanes(i) }
                                var total = sum.sum()
                                for i in whole..<size { total += Double(p[i]) }
                                let mean = total / Double(size)
                                var squares = SIMD8<Double>.zero
                                for i in stride(from: 0, to: whole, by: 8) {
                                    let d = lanes(i) - mean
                                    squares += d * d
                                }
                                var squareTotal = squares.sum()
                                for i in whole..<size { squareTotal += (Double(p[i]) - mean) * (Double(p[i]) - mean) }
                                let inverse = 1 / (squareTotal / Double(size) + epsilon).squareRoot()
                                meanOut[row] = Float(mean)
                                inverseOut[row] = Float(inverse)
                                for i in stride(from: 0, to: whole, by: 8) {
                                    let normalized = SIMD8<Float>((lanes(i) - mean) * inverse)
                                    let scaled = normalized * UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
                                        + UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
                                    UnsafeMutableRawPointer(o + i).storeBytes(of: scaled, as: SIMD8<Float>.self)
                                }
                                for i in whole..<size { o[i] = Float((Double(p[i]) - mean) * inverse) * g[i] + b[i] }
                            }
                        }
                    }
                }
            }
        }
        return [y, means, inverses]
    }
}

// MARK: - Backward

extension BatchNormalization: DifferentiableOperator {
    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1, 4) }

    /// Inference-mode statistics are constants, so `∂x = g · scale / sqrt(var + ε)` per channel.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let scale = try step.input(1).converted(to: .float64).scalars(as: Double.self)
        let variance = try step.input(4).converted(to: .float64).scalars(as: Double.self)
        let channels = scale.count
        let factor = (0..<channels).map { scale[$0] / (variance[$0] + Double(epsilon)).squareRoot() }
        let size = g.shape[2...].reduce(1, *)
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
            try g.withUnsafeBuffer(as: T.self) { gradient in
                try Tensor.build(T.self, shape: g.shape) { out in
                    for plane in 0..<(g.shape[0] * channels) {
                        let f = T(factor[plane % channels])
                        for i in plane * size..<(plane + 1) * size { out[i] = gradient[i] * f }
                    }
                }
            }
        }
        return [try withFloatType(g.dtype, "BatchNormalization") { try run($0) }]
    }
}

extension LayerNormalization: DifferentiableOperator {
    /// The input and scale, and the row statistics the forward pass computed anyway.
    func savedForBackward(wanted: [Bool]) -> SavedValues { SavedValues(inputs: [0, 1], outputs: [1, 2]) }

    /// With x̂ = (x − μ)·r and ĝ = g·γ over each normalized row of n values:
    /// `∂x = r (ĝ − mean(ĝ) − x̂ · mean(ĝ x̂))`, `∂γ = Σ g x̂`, `∂β = Σ g`.
    ///
    /// μ and r are the forward pass's (saved as its Mean and InvStdDev outputs) when it kept them,
    /// else recomputed. A row whose gradient is all zero has a zero `∂x` (a class-token readout
    /// leaves all rows but one so): it is written as such when the row's values are finite, where
    /// the formula gives zero too.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let g = try step.gradient()
        let x = try step.input(0)
        let axis = try Shape.normalize(axis: self.axis, rank: x.rank)
        let rows = x.shape[..<axis].reduce(1, *)
        let size = x.shape[axis...].reduce(1, *)
        let normalizedShape = Array(x.shape[axis...])
        let scale = try step.input(1)
        let gamma = try stridedCopy(scale.converted(to: .float64), shape: normalizedShape, strides: Shape.broadcastStrides(scale.shape, to: normalizedShape)).scalars(as: Double.self)
        let epsilon = Double(self.epsilon)
        let saved = step.outputs.count > 2 ? step.outputs[1].flatMap { mean in step.outputs[2].map { (mean, $0) } } : nil
        // Row statistics and sums in double precision, rows in parallel; the elements stay in
        // their own type (copying them all to Double arrays cost 10 ms per ViT-B row block).
        func run<T: FloatKernelScalar>(_ type: T.Type) throws -> [Tensor?] {
            let statistics = saved.flatMap { mean, inverse in
                mean.dtype == T.dtype && inverse.dtype == T.dtype && mean.count == rows && inverse.count == rows
                    ? (mean.unsafeElements(as: T.self), inverse.unsafeElements(as: T.self))
                    : nil
            }
            return try withExtendedLifetime(saved) {
                try x.withUnsafeBuffer(as: T.self) { xs in
                    try g.withUnsafeBuffer(as: T.self) { gs in
                        /// Mean and 1/σ of row `row`.
                        func moments(_ row: Int) -> (Double, Double) {
                            if let (mean, inverse) = statistics { return (Double(mean[row]), Double(inverse[row])) }
                            let start = row * size
                            var sum = 0.0
                            for i in start..<start + size { sum += Double(xs[i]) }
                            let mean = sum / Double(size)
                            var squares = 0.0
                            for i in start..<start + size { squares += (Double(xs[i]) - mean) * (Double(xs[i]) - mean) }
                            return (mean, 1 / (squares / Double(size) + epsilon).squareRoot())
                        }
                        let gx = try step.wants(0) ? Tensor.build(T.self, shape: x.shape, writesAll: true) { out in
                            guard let xp = xs.baseAddress, let gp = gs.baseAddress, let op = out.baseAddress else { return }
                            Parallel.forEach(rows, grain: max(1, 16_384 / max(size, 1))) { range in
                                for row in range {
                                    let start = row * size
                                    if isZero(gp + start, count: size), allFinite(xp + start, count: size) {
                                        (op + start).update(repeating: 0, count: size)
                                        continue
                                    }
                                    let (mean, r) = moments(row)
                                    var meanG = 0.0
                                    var meanGX = 0.0
                                    for i in 0..<size {
                                        let scaled = Double(gs[start + i]) * gamma[i]
                                        meanG += scaled
                                        meanGX += scaled * (Double(xs[start + i]) - mean) * r
                                    }
                                    meanG /= Double(size)
                                    meanGX /= Double(size)
                                    for i in 0..<size {
                                        let normalized = (Double(xs[start + i]) - mean) * r
                                        out[start + i] = T(r * (Double(gs[start + i]) * gamma[i] - meanG - normalized * meanGX))
                                    }
                                }
                            }
                        } : nil
                        guard step.wants(1) || step.wants(2) else { return [gx, nil, nil] }
                        var gGamma = [Double](repeating: 0, count: size)
                        var gBeta = [Double](repeating: 0, count: size)
                        for row in 0..<rows {
                            let start = row * size
                            let (mean, r) = moments(row)
                            for i in 0..<size {
                                gGamma[i] += Double(gs[start + i]) * (Double(xs[start + i]) - mean) * r
                                gBeta[i] += Double(gs[start + i])
                            }
                        }
                        return [
                            gx,
                            step.wants(1) ? try Tensor(shape: normalizedShape, scalars: gGamma).converted(to: x.dtype) : nil,
                            step.wants(2) ? try Tensor(shape: normalizedShape, scalars: gBeta).converted(to: x.dtype) : nil,
                        ]
                    }
                }
            }
        }
        // By name, so `run` is specialized (opened from the existential it stays generic).
        switch x.dtype {
        case .float32: return try run(Float.self)
        case .float64: return try run(Double.self)
        default: throw OpError("LayerNormalization needs float32 or float64 input, got \(x.dtype)")
        }
    }
}

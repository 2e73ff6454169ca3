import ONNXModel
import TensorCore

/// `BatchNormalization` with `training_mode = 1` (opsets 14, 15): the output uses the batch's own
/// statistics, per channel over the batch and spatial axes (population variance):
/// `Y = (X − μ_B) / √(σ²_B + ε) · scale + B`, and the optional outputs are the updated running
/// statistics `input_mean · momentum + μ_B · (1 − momentum)` (likewise for the variance).
///
/// timm's NF-Nets export their weight standardization this way; gradients flow through the batch
/// statistics (and, should any arrive, through the running-statistics outputs).
struct TrainingBatchNormalization: DifferentiableOperator {
    let epsilon: Double
    let momentum: Double

    init(_ context: OpContext) throws {
        epsilon = Double(try context.attribute("epsilon", default: Float(1e-5)))
        momentum = Double(try context.attribute("momentum", default: Float(0.9)))
    }

    /// Statistics per channel: segment `n·C + c` belongs to group and channel `c`.
    private func kernel(_ shape: [Int]) throws -> SegmentNormalization {
        guard shape.count >= 2 else { throw OpError("BatchNormalization needs rank 2 or more, got \(shape)") }
        let channels = shape[1]
        let segments = shape[0] * channels
        let perChannel = (0..<segments).map { $0 % max(channels, 1) }
        return SegmentNormalization(
            segments: segments, length: shape[2...].reduce(1, *), owners: perChannel, ownerCount: channels,
            channels: perChannel, epsilon: epsilon)
    }

    /// Inputs 1 to 4 (scale, bias, running mean and variance), one double per channel.
    private func parameters(_ tensors: [Tensor?], channels: Int, indices: [Int]) throws -> [[Double]] {
        try indices.map { index in
            guard index < tensors.count, let tensor = tensors[index] else {
                throw OpError("BatchNormalization needs input \(index)")
            }
            guard tensor.count == channels else {
                throw OpError("input \(index) has \(tensor.count) values for \(channels) channels")
            }
            return try tensor.doubles()
        }
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let kernel = try kernel(x.shape)
        let p = try parameters(inputs.tensors, channels: kernel.ownerCount, indices: [1, 2, 3, 4])
        let (y, stats) = try normalized(x, kernel, scale: p[0], bias: p[1], op: "BatchNormalization")
        /// An updated running statistic, in the type of the running input it replaces.
        func running(_ old: [Double], _ batch: [Double], like index: Int) throws -> Tensor {
            let values = zip(old, batch).map { $0 * momentum + $1 * (1 - momentum) }
            let like = try inputs.required(index)
            return try Tensor(shape: like.shape, scalars: values).converted(to: like.dtype)
        }
        return [y, try running(p[2], stats.mean, like: 3), try running(p[3], stats.variance, like: 4)]
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(0, 1, 3, 4) }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let x = try step.input(0)
        let kernel = try kernel(x.shape)
        let scale = try parameters(step.inputs, channels: kernel.ownerCount, indices: [1])[0]
        /// The gradient arriving at running-statistics output `index`, if any.
        func arriving(_ index: Int) throws -> [Double]? {
            guard index < step.outputGradients.count, let gradient = step.outputGradients[index] else { return nil }
            return try gradient.doubles()
        }
        let (meanOut, varianceOut) = (try arriving(1), try arriving(2))
        let (gx, gradients) = try normalizationGradients(
            x: x, gradient: step.gradient(), kernel: kernel, scale: scale, wantsInput: step.wants(0), op: "BatchNormalization",
            meanGradient: meanOut.map { $0.map { $0 * (1 - momentum) } },
            varianceGradient: varianceOut.map { $0.map { $0 * (1 - momentum) } })
        func tensor(_ values: [Double]?, _ index: Int) throws -> Tensor? {
            guard step.wants(index), let type = step.inputTypes[index] else { return nil }
            let values = values ?? [Double](repeating: 0, count: kernel.ownerCount)
            return try Tensor(shape: step.inputShape(index), scalars: values).converted(to: type)
        }
        return [
            gx, try tensor(gradients.scale, 1), try tensor(gradients.bias, 2),
            try tensor(meanOut?.map { $0 * momentum }, 3), try tensor(varianceOut?.map { $0 * momentum }, 4),
        ]
    }
}

import ONNXModel
import TensorCore

// Normalization by statistics of each sample: InstanceNormalization, GroupNormalization and
// MeanVarianceNormalization, all through ``SegmentNormalization``.

extension OpRegistry {
    mutating func registerInstanceNormalization() {
        register("InstanceNormalization") { context in
            StatisticNormalization(kind: .instance, epsilon: Double(try context.attribute("epsilon", default: Float(1e-5))))
        }
        register("GroupNormalization") { context in
            let groups: Int = try context.node.requiredAttribute("num_groups")
            guard groups >= 1 else { throw context.invalid("num_groups", "must be at least 1, got \(groups)") }
            // stash_type only chooses the precision of the statistics; ours are always double.
            return StatisticNormalization(
                kind: .group(groups, perChannel: context.opset >= 21),
                epsilon: Double(try context.attribute("epsilon", default: Float(1e-5))))
        }
        register("MeanVarianceNormalization") { context in
            StatisticNormalization(kind: .meanVariance(axes: try context.attribute("axes", default: [0, 2, 3])), epsilon: 1e-9)
        }
        widenForHalfPrecision(["InstanceNormalization", "GroupNormalization", "MeanVarianceNormalization"])
    }
}

/// `InstanceNormalization`, `GroupNormalization` and `MeanVarianceNormalization`.
///
/// Instance and group normalization take statistics per sample over each channel (each group of
/// `C / num_groups` channels) and all spatial positions, then apply a per-channel scale and bias;
/// GroupNormalization-18 has one scale and bias per group, GroupNormalization-21 one per channel.
/// MeanVarianceNormalization takes statistics over `axes` and computes `(x − μ) / (σ + 1e-9)`, as
/// its function body does.
struct StatisticNormalization: DifferentiableOperator {
    enum Kind {
        case instance
        case group(Int, perChannel: Bool)
        case meanVariance(axes: [Int])
    }

    let kind: Kind
    let epsilon: Double

    var name: String {
        switch kind {
        case .instance: "InstanceNormalization"
        case .group: "GroupNormalization"
        case .meanVariance: "MeanVarianceNormalization"
        }
    }

    /// How many scale (and bias) values the op takes for an input of `shape`, 0 for none.
    func parameterCount(_ shape: [Int]) -> Int {
        switch kind {
        case .instance: shape[1]
        case .group(let groups, let perChannel): perChannel ? shape[1] : groups
        case .meanVariance: 0
        }
    }

    /// The segments of an input of `shape`: their length, statistics groups and affine channels.
    func kernel(_ shape: [Int]) throws -> SegmentNormalization {
        switch kind {
        case .instance, .group:
            guard shape.count >= 2 else { throw OpError("\(name) needs an input of rank 2 or more, got \(shape)") }
            let (channels, length) = (shape[1], shape[2...].reduce(1, *))
            var groups = channels
            if case .group(let count, _) = kind {
                guard channels % count == 0 else {
                    throw OpError("\(channels) channels do not split into \(count) groups")
                }
                groups = count
            }
            let segments = shape[0] * channels
            let perGroup = channels / max(groups, 1)
            return SegmentNormalization(
                segments: segments, length: length, owners: (0..<segments).map { $0 / max(perGroup, 1) },
                ownerCount: shape[0] * groups, channels: (0..<segments).map { $0 % channels }, epsilon: epsilon)
        case .meanVariance(let rawAxes):
            let axes = Set(try rawAxes.map { try Shape.normalize(axis: $0, rank: shape.count) })
            // The longest run of reduced trailing axes makes each segment; the kept axes before it
            // pick the statistics group.
            var split = shape.count
            while split > 0, axes.contains(split - 1) { split -= 1 }
            let length = shape[split...].reduce(1, *)
            let prefix = Array(shape[..<split])
            // A segment's statistics group is its position with the reduced axes dropped: the
            // output element a reduction over those axes would fold it into.
            let groups = try ReductionLayout(prefix, reduced: prefix.indices.map { axes.contains($0) }, keepDims: true)
            var owners = [Int](repeating: 0, count: prefix.reduce(1, *))
            groups.forEachRow { i, o, step, count in
                for k in 0..<count { owners[i + k] = o + k * step }
            }
            let (segments, ownerCount) = (owners.count, groups.outputCount)
            return SegmentNormalization(
                segments: segments, length: length, owners: owners, ownerCount: ownerCount, channels: nil,
                epsilon: epsilon, epsilonOutsideRoot: true)
        }
    }

    /// Input `index` (scale or bias) as one double per channel.
    private func parameter(_ tensor: Tensor?, _ index: Int, shape: [Int]) throws -> [Double]? {
        let count = parameterCount(shape)
        guard count > 0 else { return nil }
        guard let tensor else { throw OpError("\(name) needs its \(index == 1 ? "scale" : "bias") input") }
        guard tensor.count == count else {
            throw OpError("\(index == 1 ? "scale" : "bias") has \(tensor.count) values; \(name) needs \(count) for input \(shape)")
        }
        let values = try tensor.doubles()
        // Per-group values (GroupNormalization-18) are repeated over the group's channels.
        guard count != shape[1] else { return values }
        let perGroup = shape[1] / count
        return (0..<shape[1]).map { values[$0 / perGroup] }
    }

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let kernel = try kernel(x.shape)
        let scale = try parameter(inputs[1], 1, shape: x.shape)
        let bias = try parameter(inputs[2], 2, shape: x.shape)
        return [try normalized(x, kernel, scale: scale, bias: bias, op: name).0]
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(0, 1) }

    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let x = try step.input(0)
        let kernel = try kernel(x.shape)
        let scale = try parameter(step.inputs.count > 1 ? step.inputs[1] : nil, 1, shape: x.shape)
        let (gx, gradients) = try normalizationGradients(
            x: x, gradient: step.gradient(), kernel: kernel, scale: scale, wantsInput: step.wants(0), op: name)
        let count = parameterCount(x.shape)
        /// A per-channel gradient summed to the op's parameter layout.
        func parameterGradient(_ values: [Double], _ index: Int) throws -> Tensor? {
            guard step.wants(index), count > 0 else { return nil }
            let perGroup = x.shape[1] / count
            var summed = [Double](repeating: 0, count: count)
            for (channel, value) in values.enumerated() { summed[channel / perGroup] += value }
            return try Tensor(shape: step.inputShape(index), scalars: summed).converted(to: x.dtype)
        }
        return [gx, try parameterGradient(gradients.scale, 1), try parameterGradient(gradients.bias, 2)]
    }
}

/// `x` normalized by `kernel` with per-channel `scale` and `bias` (float32 or float64), and the
/// statistics used.
func normalized(
    _ x: Tensor, _ kernel: SegmentNormalization, scale: [Double]?, bias: [Double]?, op: String
) throws -> (Tensor, SegmentNormalization.Statistics) {
    let y = try Tensor(uninitialized: x.dtype, shape: x.shape)
    func run<T: FloatKernelScalar>(_ type: T.Type) -> SegmentNormalization.Statistics {
        let n = kernel.segments * kernel.length  // what the kernel reads and writes
        return kernel.forward(
            x.unsafeElements(as: T.self).address(count: n), into: y.unsafeMutableElements(as: T.self).address(count: n),
            scale: scale, bias: bias)
    }
    let stats = try withExtendedLifetime(x) { try withFloatType(x.dtype, op) { run($0) } }
    return (y, stats)
}

/// The input gradient (when `wantsInput`) and the per-channel scale and bias gradients of a
/// ``SegmentNormalization``.
func normalizationGradients(
    x: Tensor, gradient g: Tensor, kernel: SegmentNormalization, scale: [Double]?, wantsInput: Bool, op: String,
    meanGradient: [Double]? = nil, varianceGradient: [Double]? = nil
) throws -> (Tensor?, SegmentNormalization.Gradients) {
    guard g.dtype == x.dtype, g.shape == x.shape else {
        throw OpError("\(op) backward got a \(g.dtype)\(g.shape) gradient for a \(x.dtype)\(x.shape) input")
    }
    let gx = wantsInput ? try Tensor(uninitialized: x.dtype, shape: x.shape) : nil
    func run<T: FloatKernelScalar>(_ type: T.Type) -> SegmentNormalization.Gradients {
        let n = kernel.segments * kernel.length  // what the kernel reads and writes
        return kernel.backward(
            x: x.unsafeElements(as: T.self).address(count: n), gradient: g.unsafeElements(as: T.self).address(count: n),
            scale: scale, into: gx?.unsafeMutableElements(as: T.self).address(count: n), meanGradient: meanGradient,
            varianceGradient: varianceGradient)
    }
    let gradients = try withExtendedLifetime((x, g)) { try withFloatType(x.dtype, op) { run($0) } }
    return (gx, gradients)
}

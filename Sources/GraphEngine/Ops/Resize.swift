import Foundation
import ONNXModel
import TensorCore

// Resize (opsets 10, 11, 13, 18, 19) and Upsample (7, 9): nearest, N-linear and N-cubic
// sampling, each axis resampled separably (Resize+Kernels.swift).

extension OpRegistry {
    mutating func registerResize() {
        register("Resize") { context in try Resize(context) }
        register("Upsample") { context in
            guard context.opset < 10 else {
                throw OpError("Upsample was deprecated in opset 10; the model imports opset \(context.opset) (use Resize)")
            }
            return try Resize(context)
        }
        widenForHalfPrecision(["Resize", "Upsample"])
    }
}

/// `Resize` and `Upsample`.
///
/// Output coordinates map back to input coordinates by `coordinate_transformation_mode`,
/// computed in float32 exactly as onnxruntime does (so ties in nearest sampling fall the same
/// way); Upsample and Resize-10 use `asymmetric` and onnxruntime's rounding for that version
/// (down when upsampling an axis, up when downsampling). Linear and cubic taps are clamped to the
/// edge, or dropped and the rest renormalized with `exclude_outside`; `antialias` stretches the
/// filter by `1 / scale` when downsampling. `align_corners` divides by the integer output length
/// (the spec's `length_resized`, onnxruntime, PyTorch), not the fractional `scale · length` the
/// ONNX reference implementation uses.
struct Resize: DifferentiableOperator {
    enum Mode: Equatable { case nearest, linear, cubic }
    enum Coordinates: String {
        case halfPixel = "half_pixel", halfPixelSymmetric = "half_pixel_symmetric"
        case pytorchHalfPixel = "pytorch_half_pixel", alignCorners = "align_corners", asymmetric
        case tfCropAndResize = "tf_crop_and_resize", tfHalfPixelForNN = "tf_half_pixel_for_nn"
    }
    enum Rounding: String {
        case roundPreferFloor = "round_prefer_floor", roundPreferCeil = "round_prefer_ceil", floor, ceil
        /// Resize-10 and Upsample: truncate when upsampling, round up when downsampling.
        case legacy
    }
    enum AspectPolicy: String { case stretch, notLarger = "not_larger", notSmaller = "not_smaller" }

    let mode: Mode
    let coordinates: Coordinates
    let rounding: Rounding
    let cubicA: Double
    let excludeOutside: Bool
    let extrapolationValue: Float
    let antialias: Bool
    let axes: [Int]?
    let policy: AspectPolicy
    /// Upsample-7's `scales` attribute.
    let attributeScales: [Float]?
    /// Where the optional inputs sit: Resize-11+ has roi, scales, sizes; older versions only scales.
    let roiIndex: Int?
    let scalesIndex: Int
    let sizesIndex: Int?

    init(_ context: OpContext) throws {
        let modeName = try context.attribute("mode", default: "nearest")
        switch modeName {
        case "nearest": mode = .nearest
        case "linear", "bilinear": mode = .linear
        case "cubic" where context.opset >= 11: mode = .cubic
        default: throw context.invalid("mode", "must be nearest, linear or cubic, got '\(modeName)'")
        }
        let legacy = context.opset < 11
        let coordinateName = legacy ? "asymmetric" : try context.attribute("coordinate_transformation_mode", default: "half_pixel")
        guard let coordinates = Coordinates(rawValue: coordinateName) else {
            throw context.invalid("coordinate_transformation_mode", "'\(coordinateName)' is not a coordinate transformation mode")
        }
        self.coordinates = coordinates
        let roundingName = legacy ? "legacy" : try context.attribute("nearest_mode", default: "round_prefer_floor")
        guard let rounding = Rounding(rawValue: roundingName), roundingName != "legacy" || legacy else {
            throw context.invalid("nearest_mode", "'\(roundingName)' is not a nearest mode")
        }
        self.rounding = rounding
        cubicA = Double(try context.attribute("cubic_coeff_a", default: Float(-0.75)))
        excludeOutside = try context.attribute("exclude_outside", default: 0) != 0
        extrapolationValue = try context.attribute("extrapolation_value", default: Float(0))
        antialias = try context.opset >= 18 && context.attribute("antialias", default: 0) != 0
        if antialias, mode == .nearest { throw context.invalid("antialias", "applies to linear and cubic modes only") }
        axes = context.opset >= 18 ? try context.attribute("axes") : nil
        let policyName = context.opset >= 18 ? try context.attribute("keep_aspect_ratio_policy", default: "stretch") : "stretch"
        guard let policy = AspectPolicy(rawValue: policyName) else {
            throw context.invalid("keep_aspect_ratio_policy", "must be stretch, not_larger or not_smaller, got '\(policyName)'")
        }
        self.policy = policy
        if context.node.opType == "Upsample", context.opset < 9 {
            attributeScales = try context.node.requiredAttribute("scales")
        } else {
            attributeScales = nil
        }
        (roiIndex, scalesIndex, sizesIndex) = context.opset >= 11 ? (1, 2, 3) : (nil, 1, nil)
    }

    // MARK: - Output geometry

    /// One resized axis: its extents, the scale its coordinates use, and its region of interest.
    struct Axis {
        let inLength: Int
        let outLength: Int
        let scale: Float
        let roi: (Float, Float)
    }

    /// The resampling of every axis, from the optional inputs (`tensors` as the node got them).
    func geometry(_ shape: [Int], _ tensors: [Tensor?]) throws -> [Axis] {
        let rank = shape.count
        func input(_ index: Int?) -> Tensor? {
            guard let index, index < tensors.count, let tensor = tensors[index], tensor.count > 0 else { return nil }
            return tensor
        }
        let axes = try (self.axes ?? Array(0..<rank)).map { try Shape.normalize(axis: $0, rank: rank) }
        guard Set(axes).count == axes.count else { throw OpError("Resize axes \(axes) repeat an axis") }
        let scales = try attributeScales ?? input(scalesIndex)?.doubles().map { Float($0) }
        let sizes = try input(sizesIndex)?.integers()
        guard (scales == nil) != (sizes == nil) else {
            throw OpError("Resize needs exactly one of scales and sizes, got \(scales == nil ? "neither" : "both")")
        }
        var roi = [(Float, Float)](repeating: (0, 1), count: rank)
        if coordinates == .tfCropAndResize {
            guard let values = try input(roiIndex)?.doubles().map({ Float($0) }) else {
                throw OpError("tf_crop_and_resize needs the roi input")
            }
            guard values.count == 2 * axes.count else {
                throw OpError("roi has \(values.count) values; \(axes.count) axes need \(2 * axes.count)")
            }
            for (i, axis) in axes.enumerated() { roi[axis] = (values[i], values[axes.count + i]) }
        }
        var outLengths = shape
        var axisScales = [Float](repeating: 1, count: rank)
        if let scales {
            guard scales.count == axes.count else {
                throw OpError("scales has \(scales.count) values for \(axes.count) axes")
            }
            for (i, axis) in axes.enumerated() {
                guard scales[i] > 0, scales[i].isFinite else { throw OpError("scale \(scales[i]) must be a positive number") }
                axisScales[axis] = scales[i]
                outLengths[axis] = try Resize.length(Double(scales[i]) * Double(shape[axis]), axis: axis)
            }
        } else if let sizes {
            guard sizes.count == axes.count else { throw OpError("sizes has \(sizes.count) values for \(axes.count) axes") }
            for (i, axis) in axes.enumerated() {
                guard sizes[i] >= 0 else { throw OpError("size \(sizes[i]) of axis \(axis) is negative") }
                guard shape[axis] > 0 || sizes[i] == 0 else {
                    throw OpError("axis \(axis) is empty and cannot be resized to \(sizes[i])")
                }
                outLengths[axis] = sizes[i]
                axisScales[axis] = shape[axis] > 0 ? Float(sizes[i]) / Float(shape[axis]) : 1
            }
            if policy != .stretch {
                // One scale for all resized axes, the smallest or largest; lengths round half up.
                let chosen = axes.map { axisScales[$0] }
                let scale = (policy == .notLarger ? chosen.min() : chosen.max()) ?? 1
                for axis in axes {
                    axisScales[axis] = scale
                    outLengths[axis] = try Resize.length((Double(scale * Float(shape[axis]))).rounded(.toNearestOrAwayFromZero), axis: axis)
                }
            }
        }
        _ = try Shape.elementCount(outLengths)
        return (0..<rank).map { Axis(inLength: shape[$0], outLength: outLengths[$0], scale: axisScales[$0], roi: roi[$0]) }
    }

    /// `⌊value⌋` as an output length, refused when it could not be a tensor extent.
    private static func length(_ value: Double, axis: Int) throws -> Int {
        guard value.isFinite, value >= 0, value < Double(1 << 48) else {
            throw OpError("axis \(axis) would get \(value) elements")
        }
        return Int(value.rounded(.down))
    }

    // MARK: - Taps

    /// The input coordinate output coordinate `x` maps to, in float32 with onnxruntime's formulas.
    func original(_ x: Int, _ axis: Axis) -> Float {
        let (resized, inLength, outLength, scale) = (Float(x), Float(axis.inLength), Float(axis.outLength), axis.scale)
        switch coordinates {
        case .halfPixel: return (resized + 0.5) / scale - 0.5
        case .asymmetric: return resized / scale
        case .pytorchHalfPixel: return outLength > 1 ? (resized + 0.5) / scale - 0.5 : 0
        case .tfHalfPixelForNN: return (resized + 0.5) / scale
        case .alignCorners: return outLength == 1 ? 0 : resized * (inLength - 1) / (outLength - 1)
        case .tfCropAndResize:
            let (start, end) = axis.roi
            return outLength > 1
                ? start * (inLength - 1) + (resized * (end - start) * (inLength - 1)) / (outLength - 1)
                : Float(0.5 * Double(start + end) * Double(inLength - 1))
        case .halfPixelSymmetric:
            let adjustment = outLength / (scale * inLength)
            let offset = inLength / 2 * (1 - adjustment)
            return Float(Double(offset) + (Double(x) + 0.5) / Double(scale) - 0.5)
        }
    }

    /// The nearest input coordinate to `position` (before clamping), by `nearest_mode`.
    func nearest(_ position: Float, downsampling: Bool) -> Int {
        let value: Float
        switch rounding {
        case .roundPreferFloor: value = position == position.rounded(.towardZero) + 0.5 ? position.rounded(.down) : position.rounded()
        case .roundPreferCeil: value = position.rounded()
        case .floor: value = position.rounded(.down)
        case .ceil: value = position.rounded(.up)
        case .legacy: value = downsampling ? position.rounded(.up) : position.rounded(.towardZero)
        }
        return Int(value)
    }

    /// Keys' cubic convolution kernel with coefficient `a`.
    private func cubic(_ distance: Double) -> Double {
        let x = abs(distance)
        let a = cubicA
        if x <= 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        return 0
    }

    /// The taps of one axis.
    func taps(_ axis: Axis) throws -> AxisTaps {
        let (inLength, outLength) = (axis.inLength, axis.outLength)
        // An empty output needs no taps (and its scale may be too small for the filter's width).
        guard outLength > 0 else {
            return AxisTaps(inLength: inLength, outLength: 0, width: 1, indices: [], weights: [], outside: [])
        }
        // Linear and cubic filters: taps base + i for i in first..<first + width, weighted by the
        // kernel at (i − ratio)·s with ratio in (0, 1]; s < 1 only when antialiasing a downsample.
        let stretch = antialias ? Double(min(axis.scale, 1)) : 1
        let first: Int
        switch mode {
        case .nearest: first = 0
        case .linear: first = Int((-1 / stretch).rounded(.down)) + 1
        case .cubic: first = Int((-2 / stretch).rounded(.down)) + 1
        }
        let width = mode == .nearest ? 1 : 2 - 2 * first
        // An index and a weight per tap: refused when they could not fit in memory (a fractional
        // output length of 2⁴⁰ passes the shape checks but not this one).
        let (entries, overflow) = width.multipliedReportingOverflow(by: outLength)
        guard !overflow, entries <= MemoryBudget.limit / 32 else {
            throw OpError("resampling \(inLength) elements to \(outLength) with \(width) taps each needs too much memory")
        }
        var taps = AxisTaps(
            inLength: inLength, outLength: outLength, width: width, indices: .init(repeating: 0, count: entries),
            weights: .init(repeating: 0, count: entries), outside: [])
        // Coordinates far outside the input read only edge elements; clamping them keeps the
        // integer conversions in range without changing a result.
        let margin = Float(width + 2)
        for x in 0..<outLength {
            var position = original(x, axis)
            if coordinates == .tfCropAndResize, position < 0 || position > Float(inLength - 1) { taps.outside.append(x) }
            position = position.isNaN ? 0 : min(max(position, -margin), Float(inLength) + margin)
            let row = x * width
            if mode == .nearest {
                taps.indices[row] = min(max(nearest(position, downsampling: axis.scale < 1), 0), inLength - 1)
                taps.weights[row] = 1
                continue
            }
            let coordinate = Double(position)
            let base = coordinate == coordinate.rounded(.down) ? Int(coordinate) - 1 : Int(coordinate.rounded(.down))
            let ratio = coordinate - Double(base)
            var total = 0.0
            for i in 0..<width {
                let offset = Double(first + i) - ratio
                var weight = mode == .linear ? max(0, 1 - abs(offset * stretch)) : cubic(offset * stretch)
                let index = base + first + i
                if excludeOutside, index < 0 || index >= inLength { weight = 0 }
                taps.indices[row + i] = min(max(index, 0), inLength - 1)
                taps.weights[row + i] = weight
                total += weight
            }
            if total != 0 { for i in 0..<width { taps.weights[row + i] /= total } }
        }
        return taps
    }

    /// The taps of every axis that changes, `nil` for the unchanged ones: an axis of scale 1 and
    /// unchanged length is copied whatever the coordinate mode (as onnxruntime does; under
    /// tf_half_pixel_for_nn it would otherwise shift by half an element), unless a region of
    /// interest crops it.
    func plan(_ shape: [Int], _ tensors: [Tensor?]) throws -> [AxisTaps?] {
        try geometry(shape, tensors).map { axis in
            if axis.scale == 1, axis.outLength == axis.inLength, coordinates != .tfCropAndResize || axis.roi == (0, 1) {
                return nil
            }
            let taps = try taps(axis)
            if taps.isIdentity { return nil }
            return taps.singleTap ?? taps
        }
    }

    // MARK: - Forward and backward

    func forward(_ inputs: OpInputs) throws -> [Tensor?] {
        let x = try inputs.required(0)
        let plan = try plan(x.shape, inputs.tensors)
        guard plan.contains(where: { $0 != nil }) else { return [x] }
        let fill = try Tensor(scalar: extrapolationValue).converted(to: x.dtype)
        var y = x
        if Resampling.planarApplies(x, plan) {
            y = try Resampling.planar(x, rows: plan[2] ?? identity(x.shape[2]), columns: plan[3] ?? identity(x.shape[3]))
        } else if plan.allSatisfy({ ($0?.width ?? 1) == 1 }) {
            // Nearest (or grid-aligned) sampling moves elements of any type.
            for (axis, taps) in plan.enumerated() { if let taps { y = try Resampling.gather(y, axis: axis, taps: taps) } }
        } else if x.dtype == .float32 || x.dtype == .float64 {
            func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
                var y = x
                for (axis, taps) in plan.enumerated() { if let taps { y = try Resampling.interpolate(y, axis: axis, taps: taps, as: T.self) } }
                return y
            }
            y = try withFloatType(x.dtype, "Resize") { try run($0) }
        } else {
            // Integers and booleans interpolate in double precision, then truncate toward zero as
            // onnxruntime's cast does (the ONNX reference rounds; no node test has integer linear).
            var wide = try x.converted(to: .float64)
            for (axis, taps) in plan.enumerated() { if let taps { wide = try Resampling.interpolate(wide, axis: axis, taps: taps, as: Double.self) } }
            y = try wide.converted(to: x.dtype)
        }
        Resampling.fillOutside(y, taps: plan, value: fill)
        return [y]
    }

    /// One tap of weight 1 per coordinate: an axis the fast path passes through.
    private func identity(_ length: Int) -> AxisTaps {
        AxisTaps(inLength: length, outLength: length, width: 1, indices: Array(0..<length),
                 weights: .init(repeating: 1, count: length), outside: [])
    }

    func savedForBackward(wanted: [Bool]) -> SavedValues { .inputs(1, 2, 3) }

    /// The adjoint of the forward passes, in reverse order: each output's gradient goes back to
    /// the taps it read, with their weights; extrapolated outputs pass nothing back.
    func backward(_ step: BackwardStep) throws -> [Tensor?] {
        let shape = try step.inputShape(0)
        let plan = try plan(shape, step.inputs)
        let g = try Resampling.clearOutside(step.gradient(), taps: plan)
        let gx: Tensor
        if Resampling.planarApplies(g, plan) {
            gx = try Resampling.planarGradient(
                g, inputShape: shape, rows: plan[2] ?? identity(shape[2]), columns: plan[3] ?? identity(shape[3]))
        } else {
            func run<T: FloatKernelScalar>(_ type: T.Type) throws -> Tensor {
                var gx = g
                for (axis, taps) in plan.enumerated().reversed() { if let taps { gx = try Resampling.scatter(gx, axis: axis, taps: taps, as: T.self) } }
                return gx
            }
            gx = try withFloatType(g.dtype, "Resize") { try run($0) }
        }
        return [gx]
    }
}

import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Resize and Upsample: finite-difference checks of the backward rule for every mode (float64
/// through the separable passes, float32 through the NCHW fast path), the fast path against the
/// passes bit for bit, exact element types, and the errors bad inputs give. Values against
/// onnxruntime are in SpatialGoldenTests.
@Suite struct ResizeTests {
    static let emptyRoi = try! Tensor(shape: [0], scalars: [Float]())

    func scales(_ values: [Float]) throws -> Tensor { try Tensor(shape: [values.count], scalars: values) }

    /// A gradient check of Resize-19 on `x`, resized by `scales` or to `sizes`.
    func check(
        _ x: Tensor, scales: [Float]? = nil, sizes: [Int]? = nil, roi: [Float]? = nil, _ attributes: [String: Attribute],
        opset: Int = 19
    ) throws -> GradientCheck {
        var constants: [(position: Int, tensor: Tensor)] = [(1, try roi.map(self.scales) ?? Self.emptyRoi)]
        if let scales { constants.append((2, try self.scales(scales))) }
        if let sizes { constants.append((3, try int64s(sizes))) }
        return GradientCheck(op: "Resize", attributes: attributes, inputs: [x], constants: constants, opset: opset)
            .withPositions([0])
    }

    /// Runs one Resize-19 node.
    func resize(
        _ x: Tensor, scales: [Float]? = nil, sizes: [Int]? = nil, roi: [Float]? = nil, _ attributes: [String: Attribute] = [:],
        opset: Int = 19, op: String = "Resize"
    ) throws -> Tensor {
        var initializers: [String: Tensor] = [:]
        var inputs = ["x", roi == nil ? "" : "roi", scales == nil ? "" : "scales", sizes == nil ? "" : "sizes"]
        if let roi { initializers["roi"] = try self.scales(roi) }
        if let scales { initializers["scales"] = try self.scales(scales) }
        if let sizes { initializers["sizes"] = try int64s(sizes) }
        if opset < 11 { inputs = scales == nil ? ["x"] : ["x", "scales"] }
        while inputs.last == "" { inputs.removeLast() }
        let node = Node(name: "resize", opType: op, inputs: inputs, outputs: ["y"], attributes: attributes)
        let model = Model(
            opsets: ["": opset],
            graph: Graph(nodes: [node], initializers: initializers, inputs: [ValueInfo(name: "x", elementType: x.dtype)],
                         outputs: [ValueInfo(name: "y", elementType: nil)]))
        return try #require(try Executor(model: model).run(["x": x])["y"])
    }

    @Test(arguments: ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
    func nearestGradient(_ rounding: String) throws {
        let x = try randomTensor([1, 2, 3, 4], seed: 70)
        let attributes: [String: Attribute] = ["mode": .string("nearest"), "nearest_mode": .string(rounding)]
        #expect(try check(x, scales: [1, 1, 1.7, 0.6], attributes).run() == [])
        #expect(try check(x, sizes: [1, 2, 5, 3], attributes.merging(["coordinate_transformation_mode": .string("align_corners")]) { $1 }).run() == [])
    }

    @Test(arguments: ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"])
    func linearAndCubicGradients(_ coordinates: String) throws {
        let x = try randomTensor([1, 2, 3, 4], seed: 71)
        for mode in ["linear", "cubic"] {
            let attributes: [String: Attribute] = ["mode": .string(mode), "coordinate_transformation_mode": .string(coordinates)]
            #expect(try check(x, scales: [1, 1, 1.7, 0.6], attributes).run() == [], "\(mode)")
            #expect(try check(x, sizes: [1, 2, 1, 7], attributes).run() == [], "\(mode) to length 1")
        }
    }

    @Test func filtersAndRegionsGradients() throws {
        let x = try randomTensor([1, 1, 6, 7], seed: 72)
        let cubic: [String: Attribute] = ["mode": .string("cubic"), "exclude_outside": .int(1), "cubic_coeff_a": .float(-0.5)]
        #expect(try check(x, scales: [1, 1, 1.5, 0.8], cubic).run() == [])
        for mode in ["linear", "cubic"] {
            let antialias: [String: Attribute] = ["mode": .string(mode), "antialias": .int(1)]
            #expect(try check(x, scales: [1, 1, 0.5, 0.34], antialias).run() == [], "\(mode) antialias")
        }
        // Outputs outside the region take the extrapolation value and pass no gradient back.
        let crop: [String: Attribute] = [
            "mode": .string("linear"), "coordinate_transformation_mode": .string("tf_crop_and_resize"),
            "extrapolation_value": .float(2),
        ]
        #expect(try check(x, sizes: [1, 1, 4, 5], roi: [0, 0, -0.3, 0.2, 1, 1, 0.9, 1.4], crop).run() == [])
        let axes: [String: Attribute] = ["mode": .string("linear"), "axes": .ints([-1, 2])]
        #expect(try check(x, sizes: [3, 9], axes).run() == [])
    }

    @Test func otherRanksAndOldVersions() throws {
        let linear: [String: Attribute] = ["mode": .string("linear")]
        #expect(try check(try randomTensor([1, 2, 2, 3, 3], seed: 73), scales: [1, 1, 1.5, 0.7, 2], linear).run() == [])
        #expect(try check(try randomTensor([3, 4], seed: 74), scales: [0.7, 1.5], ["mode": .string("cubic")]).run() == [])
        #expect(try check(try randomTensor([5], seed: 75), scales: [1.5], linear).run() == [])
        let x = try randomTensor([1, 1, 3, 3], seed: 76)
        let upsample9 = GradientCheck(op: "Upsample", attributes: linear, inputs: [x], constants: [(1, try scales([1, 1, 2, 1.5]))], opset: 9)
        #expect(try upsample9.run() == [])
        let upsample7 = GradientCheck(
            op: "Upsample", attributes: ["mode": .string("nearest"), "scales": .floats([1, 1, 3, 2])], inputs: [x], opset: 7)
        #expect(try upsample7.run() == [])
        let resize10 = GradientCheck(op: "Resize", attributes: linear, inputs: [x], constants: [(1, try scales([1, 1, 0.6, 2]))], opset: 10)
        #expect(try resize10.run() == [])
    }

    /// The float32 NCHW fast path: finite differences at float32's step and tolerance.
    @Test func fastPathGradients() throws {
        let x = try randomTensor([2, 2, 4, 5], seed: 77, dtype: .float32)
        #expect(try check(x, scales: [1, 1, 2, 2], ["mode": .string("linear")]).run() == [])
        #expect(try check(x, scales: [1, 1, 2, 2], ["mode": .string("nearest")]).run() == [])
        #expect(try check(x, sizes: [2, 2, 3, 9], ["mode": .string("linear"), "coordinate_transformation_mode": .string("align_corners")]).run() == [])
    }

    /// The NCHW fast path and the separable passes (which a `[N, C, 1, H, W]` view of the same
    /// data takes) do the same products in the same order: equal bits, forward and backward.
    @Test(arguments: [("linear", "half_pixel"), ("linear", "align_corners"), ("nearest", "asymmetric"), ("linear", "tf_crop_and_resize")])
    func fastPathEqualsThePasses(_ setting: (String, String)) throws {
        let x = try randomTensor([2, 3, 5, 6], seed: 78, dtype: .float32)
        let wide = try x.reshaped([2, 3, 1, 5, 6])
        let attributes: [String: Attribute] = [
            "mode": .string(setting.0), "coordinate_transformation_mode": .string(setting.1), "extrapolation_value": .float(0.5),
        ]
        let cropped = setting.1 == "tf_crop_and_resize"
        let fast = try resize(x, sizes: [2, 3, 11, 4], roi: cropped ? [0, 0, -0.2, 0.1, 1, 1, 1.1, 0.7] : nil, attributes)
        let passes = try resize(wide, sizes: [2, 3, 1, 11, 4], roi: cropped ? [0, 0, 0, -0.2, 0.1, 1, 1, 1, 1.1, 0.7] : nil, attributes)
        #expect(try fast.scalars(as: Float.self) == passes.scalars(as: Float.self))

        let seed = try randomTensor([2, 3, 11, 4], seed: 79, dtype: .float32)
        func gradient(_ input: Tensor, _ sizes: [Int], _ roi: [Float]?) throws -> [Float] {
            let check = try self.check(input, sizes: sizes, roi: roi, attributes)
            let result = try Executor(model: check.model()).gradients(
                ["x0": input], seed: { _ in try seed.reshaped(sizes) }, output: "y0", wrt: ["x0"])
            return try #require(result.gradients["x0"]).scalars(as: Float.self)
        }
        #expect(
            try gradient(x, [2, 3, 11, 4], cropped ? [0, 0, -0.2, 0.1, 1, 1, 1.1, 0.7] : nil)
                == gradient(wide, [2, 3, 1, 11, 4], cropped ? [0, 0, 0, -0.2, 0.1, 1, 1, 1, 1.1, 0.7] : nil))
    }

    @Test func elementTypesKeepTheirValues() throws {
        // Nearest moves elements: int64 beyond 2⁵³ stays exact, booleans stay booleans.
        let big = try Tensor(shape: [1, 3], scalars: [Int64(1) << 60 | 1, -5, .max])
        #expect(try resize(big, scales: [1, 2], ["mode": .string("nearest")]).scalars(as: Int64.self)
            == [(1 << 60) | 1, (1 << 60) | 1, -5, -5, .max, .max])
        let flags = try Tensor(shape: [2], scalars: [true, false])
        #expect(try resize(flags, sizes: [4], ["mode": .string("nearest")]).scalars(as: Bool.self) == [true, true, false, false])
        // Linear on integers truncates toward zero and saturates, as onnxruntime's cast does.
        let bytes = try Tensor(shape: [2], scalars: [UInt8(0), 255])
        #expect(try resize(bytes, sizes: [3], ["mode": .string("linear"), "coordinate_transformation_mode": .string("align_corners")])
            .scalars(as: UInt8.self) == [0, 127, 255])
        let half = try Tensor(shape: [1, 1, 2, 2], scalars: [Float(1), 2, 3, 4]).converted(to: .float16)
        let upsampled = try resize(half, scales: [1, 1, 2, 2], ["mode": .string("nearest")])
        #expect(upsampled.dtype == .float16)
        #expect(try upsampled.converted(to: .float32).scalars(as: Float.self)
            == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
    }

    @Test func badInputsGiveErrorsNamingTheNode() throws {
        let x = try Tensor(shape: [1, 1, 2, 2], scalars: [Float](repeating: 1, count: 4))
        #expect(errorText { try resize(x) }.contains("exactly one of scales and sizes"))
        #expect(errorText { try resize(x, scales: [1, 1, 2, 2], sizes: [1, 1, 4, 4]) }.contains("exactly one"))
        #expect(errorText { try resize(x, scales: [1, 2]) }.contains("scales has 2 values for 4 axes"))
        #expect(errorText { try resize(x, scales: [1, 1, 0, 2]) }.contains("positive"))
        #expect(errorText { try resize(x, scales: [1, 1, 1e30, 1e30]) }.contains("node 'resize'"))
        #expect(errorText { try resize(x, sizes: [1, 1, 1 << 40, 1 << 40]) }.contains("node 'resize'"))
        #expect(errorText { try resize(x, sizes: [1, 1, -1, 2]) }.contains("negative"))
        #expect(errorText { try resize(x, sizes: [1, 1, 2, 2], ["coordinate_transformation_mode": .string("tf_crop_and_resize")]) }
            .contains("roi"))
        #expect(errorText { try resize(x, sizes: [4, 4], ["axes": .ints([2, -2])]) }.contains("repeat an axis"))
        #expect(errorText { try resize(x, scales: [1, 1, 2, 2], ["mode": .string("area")]) }.contains("mode"))
        #expect(errorText { try resize(x, scales: [1, 1, 2, 2], ["antialias": .int(1)]) }.contains("linear and cubic"))
        #expect(errorText { try resize(x, scales: [1, 1, 2, 2], opset: 10, op: "Upsample") }.contains("deprecated"))
        #expect(errorText { try resize(x, sizes: [1, 1, 1, 1 << 45]) }.contains("too much memory"))
        let empty = try Tensor(zeros: .float32, shape: [1, 1, 0, 2])
        #expect(errorText { try resize(empty, sizes: [1, 1, 3, 2]) }.contains("empty"))
    }
}

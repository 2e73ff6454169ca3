import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// One single-node case of `Fixtures/spatial/*.json` (written by `tools/export_spatial_goldens.py`): the
/// node, its inputs and onnxruntime's outputs.
struct SpatialGoldenCase: CustomTestStringConvertible, Sendable {
    let file: String
    let name: String
    let op: String
    let opset: Int
    let attributes: [String: Attribute]
    /// `nil` for an omitted optional input.
    let inputs: [(name: String, tensor: Tensor)?]
    let outputs: [Tensor]

    var testDescription: String { name }

    /// The cases of one golden file; an unreadable file gives no cases, which `filesLoad` reports.
    static func load(_ file: String) -> [SpatialGoldenCase] {
        guard let data = try? Data(contentsOf: Fixtures.url("spatial/\(file)")),
            let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let cases = root["cases"] as? [[String: Any]]
        else { return [] }
        return cases.compactMap { try? SpatialGoldenCase(file: file, json: $0) }
    }

    init(file: String, json: [String: Any]) throws {
        struct Malformed: Error {}
        guard let name = json["name"] as? String, let op = json["op"] as? String, let opset = json["opset"] as? Int,
            let attributes = json["attributes"] as? [String: [String: Any]], let inputs = json["inputs"] as? [[String: Any]],
            let outputs = json["outputs"] as? [[String: Any]]
        else { throw Malformed() }
        self.file = file
        self.name = name
        self.op = op
        self.opset = opset
        self.attributes = try attributes.mapValues { entry in
            switch (entry["type"] as? String, entry["value"]) {
            case ("int", let value as Int): return .int(value)
            case ("float", let value as Double): return .float(Float(value))
            case ("string", let value as String): return .string(value)
            case ("ints", let value as [Int]): return .ints(value)
            case ("floats", let value as [Double]): return .floats(value.map { Float($0) })
            default: throw Malformed()
            }
        }
        func tensor(_ entry: [String: Any]) throws -> Tensor {
            guard let type = (entry["dtype"] as? String).flatMap(DType.init(rawValue:)), let shape = entry["shape"] as? [Int],
                let data = entry["data"] as? [Any]
            else { throw Malformed() }
            // JSON numbers: floats are the exact doubles of the stored values, integers exact.
            let values = data.map { ($0 as? NSNumber)?.doubleValue ?? 0 }
            if type == .int64 {
                return try Tensor(shape: shape, scalars: data.map { ($0 as? NSNumber)?.int64Value ?? 0 })
            }
            return try Tensor(shape: shape, scalars: values).converted(to: type)
        }
        self.inputs = try inputs.map { entry in
            guard let name = entry["name"] as? String, !name.isEmpty else { return nil }
            return (name, try tensor(entry))
        }
        self.outputs = try outputs.map(tensor)
    }

    /// The case as a model: one node, every present input a graph input.
    func model() -> Model {
        var names = inputs.map { $0?.name ?? "" }
        while names.last == "" { names.removeLast() }
        let outputNames = outputs.indices.map { "y\($0)" }
        let node = Node(name: name, opType: op, inputs: names, outputs: outputNames, attributes: attributes)
        return Model(
            opsets: ["": opset],
            graph: Graph(
                nodes: [node], inputs: inputs.compactMap { $0.map { ValueInfo(name: $0.name, elementType: $0.tensor.dtype) } },
                outputs: outputNames.map { ValueInfo(name: $0, elementType: nil) }))
    }

    /// Runs the case; returns a description of each output that differs by more than `tolerance`
    /// (absolute, relative to |expected|), exact for integer and bool outputs.
    func mismatches(tolerance: (Double, Double)) throws -> [String] {
        let executor = try Executor(model: model())
        let feeds = Dictionary(uniqueKeysWithValues: inputs.compactMap { $0 })
        let results = try executor.run(feeds)
        return try outputs.enumerated().compactMap { index, want in
            guard let got = results["y\(index)"] else { return "y\(index) missing" }
            let exact = !want.dtype.isFloatingPoint
            let comparison = try TensorComparison(got, want, absolute: exact ? 0 : tolerance.0, relative: exact ? 0 : tolerance.1)
            return comparison.mismatches == 0 ? nil : "y\(index): \(comparison)"
        }
    }
}

@Suite struct SpatialGoldenTests {
    static let resize = SpatialGoldenCase.load("resize.json")
    static let spatial = SpatialGoldenCase.load("spatial.json")

    @Test func filesLoad() {
        #expect(Self.resize.count >= 300, "Fixtures/spatial/resize.json: \(Self.resize.count) cases")
        #expect(Self.spatial.count >= 90, "Fixtures/spatial/spatial.json: \(Self.spatial.count) cases")
    }

    /// Nearest sampling picks elements, so it must match exactly (the same taps as onnxruntime's
    /// float32 coordinates, ties included). Linear and cubic weights are computed in double and
    /// applied in float32 where onnxruntime computes them in float32: 1e-5 absolute and relative
    /// covers a few float32 roundings of values up to 4 (the largest difference measured is 9e-7,
    /// antialiased cubic). float16 outputs are rounded once from float32 on both sides, so at most
    /// one half-precision unit (1e-3 relative) apart (all measured equal).
    @Test(arguments: resize)
    func resizeMatchesOnnxruntime(_ test: SpatialGoldenCase) throws {
        let nearest = test.attributes["mode"].map { if case .string("nearest") = $0 { true } else { false } } ?? true
        let half = test.outputs.first?.dtype == .float16
        let tolerance = nearest ? (0.0, 0.0) : half ? (1e-3, 1e-3) : (1e-5, 1e-5)
        let mismatches = try test.mismatches(tolerance: tolerance)
        #expect(mismatches == [], "\(test.name): \(mismatches)")
    }

    /// Pad and the data movement are exact; ConvTranspose, Einsum and the normalizations sum in a
    /// different order than onnxruntime (statistics here in double): 1e-5 absolute and relative
    /// covers float32 sums of a few dozen terms of magnitude up to 4 (largest measured: 2.2e-7).
    /// float16 cases: one half-precision unit.
    @Test(arguments: spatial)
    func spatialOpsMatchOnnxruntime(_ test: SpatialGoldenCase) throws {
        let exact = test.op == "Pad"
        let half = test.outputs.first?.dtype == .float16
        let tolerance = exact ? (0.0, 0.0) : half ? (1e-3, 1e-3) : (1e-5, 1e-5)
        let mismatches = try test.mismatches(tolerance: tolerance)
        #expect(mismatches == [], "\(test.name): \(mismatches)")
    }
}

import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// `Fixtures/op-cases/manifest.json`, written by `tools/export_op_cases.py`.
struct OpCase: Decodable, Sendable, CustomTestStringConvertible {
    let name: String
    let op: String
    let opset: Int
    let what: String
    /// The tool whose outputs are the goldens.
    let reference: String
    /// For gradient cases, the PyTorch function whose autograd gradient is the golden.
    let gradient: String?

    var testDescription: String { name }

    static let all: [OpCase] = {
        struct Manifest: Decodable { let cases: [OpCase] }
        guard let data = try? Data(contentsOf: Fixtures.url("op-cases/manifest.json")) else { return [] }
        return (try? JSONDecoder().decode(Manifest.self, from: data).cases) ?? []
    }()
}

/// The reduction and indexing ops at the opsets, attribute defaults and element types the
/// upstream node tests leave out, against onnxruntime (or the ONNX reference where onnxruntime
/// has no kernel, or skips NaN), and their gradients where a rule must choose (ties, zeros, NaN)
/// against PyTorch's autograd.
@Suite struct OpCaseTests {
    @Test func theManifestListsEveryCase() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Fixtures.url("op-cases").path).filter { !$0.hasSuffix(".json") }
        #expect(OpCase.all.count >= 90)
        #expect(Set(folders) == Set(OpCase.all.map(\.name)))
    }

    /// Outputs match within the ONNX backend runner's tolerance (rtol 1e-3, atol 1e-7), as the
    /// node tests; integer and bool outputs exactly.
    @Test(arguments: OpCase.all)
    func matchesTheReference(_ opCase: OpCase) throws {
        let failure = try NodeTestCase(name: opCase.name, note: opCase.what, root: "op-cases").run()
        #expect(failure == nil, "\(opCase.name) (\(opCase.what)): \(failure ?? "")")
    }

    /// float64 gradients through the reverse pass; both sides evaluate the same formula, so they
    /// agree to rounding: 1e-12 relative (+1e-15 absolute for exact zeros), NaN where PyTorch's is.
    @Test(arguments: OpCase.all.filter { $0.gradient != nil })
    func gradientMatchesPyTorch(_ opCase: OpCase) throws {
        let folder = Fixtures.url("op-cases/\(opCase.name)")
        let executor = try Executor(model: Model(contentsOf: folder.appendingPathComponent("model.onnx")))
        let feeds = try Dictionary(
            uniqueKeysWithValues: executor.inputs.enumerated().map { index, input in
                (input.name, try Tensor(tensorProtoAt: folder.appendingPathComponent("test_data_set_0/input_\(index).pb")))
            })
        let upstream = try Tensor(tensorProtoAt: folder.appendingPathComponent("gradient/upstream.pb"))
        let expected = try Tensor(tensorProtoAt: folder.appendingPathComponent("gradient/input_0.pb"))
        let x = executor.inputs[0].name
        let result = try executor.gradients(feeds, of: .custom { _ in upstream }, wrt: [x])
        let comparison = try TensorComparison(try #require(result.gradients[x]), expected, absolute: 1e-15, relative: 1e-12)
        #expect(comparison.mismatches == 0, "\(opCase.name) vs \(opCase.gradient ?? ""): \(comparison)")
    }
}

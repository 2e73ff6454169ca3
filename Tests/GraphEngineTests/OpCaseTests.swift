import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// One case of `Fixtures/op-cases/manifest.json`, written by `tools/export_op_cases.py`: a
/// one-node model in the upstream node-test layout, packed in `op-cases/cases.tar.gz`.
struct OpCase: Decodable, Sendable, CustomTestStringConvertible {
    let name: String
    let op: String
    let opset: Int
    let what: String
    /// The graph inputs' element types.
    let dtypes: [String]
    /// The tool whose outputs are the goldens.
    let reference: String
    /// For gradient cases, the PyTorch function whose autograd gradient is the golden.
    let gradient: String?
    /// For gradient cases, how many leading inputs the golden differentiates.
    let gradientInputs: Int?

    enum CodingKeys: String, CodingKey {
        case name, op, opset, what, dtypes, reference, gradient
        case gradientInputs = "gradient_inputs"
    }

    var testDescription: String { name }

    static let archive = "op-cases/cases.tar.gz"

    func folder() throws -> URL { try Fixtures.unpacked(Self.archive).appendingPathComponent(name) }

    func tensor(_ path: String) throws -> Tensor { try Tensor(tensorProtoAt: folder().appendingPathComponent(path)) }

    static let all: [OpCase] = {
        struct Manifest: Decodable { let cases: [OpCase] }
        guard let data = try? Data(contentsOf: Fixtures.url("op-cases/manifest.json")) else { return [] }
        return (try? JSONDecoder().decode(Manifest.self, from: data).cases) ?? []
    }()
}

/// The ops of issue 11 at the opsets, attribute defaults and element types the upstream node
/// tests leave out, against onnxruntime (or the ONNX reference where onnxruntime has no kernel,
/// or skips NaN), and their gradients where a rule must choose (kinks, ties, zeros, NaN) against
/// PyTorch's autograd.
@Suite struct OpCaseTests {
    @Test func theManifestListsEveryCase() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Fixtures.unpacked(OpCase.archive).path)
        #expect(OpCase.all.count >= 357)
        #expect(OpCase.all.filter { $0.gradient != nil }.count >= 29)
        #expect(Set(folders) == Set(OpCase.all.map(\.name)))
    }

    /// Ops whose float results the references compute with other elementary functions (their own
    /// vectorized exp/log/tanh, or NumPy's sin/cos/log, each within an ulp of ours) or in another
    /// order of operations (Softsign, LogSoftmax; the normalizations' sums and roots; the recurrent
    /// cells' gate sums): they agree within 4 units in the last place of the largest reference
    /// value (measured: at most 2). Every other case (exact arithmetic, piecewise linear maps, data
    /// movement, and on these inputs the reductions too) matches bit for bit, stricter than the node
    /// tests' rtol 1e-3.
    static let rounded: Set<String> = [
        "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish", "LogSoftmax", "Sin", "Cos", "Log",
        "InstanceNormalization", "LRN", "LpNormalization", "BatchNormalization", "LSTM", "GRU", "RNN",
    ]

    @Test(arguments: OpCase.all)
    func matchesTheReference(_ opCase: OpCase) throws {
        let folder = try opCase.folder()
        let executor = try Executor(model: Model(contentsOf: folder.appendingPathComponent("model.onnx")))
        let feeds = Dictionary(uniqueKeysWithValues: try executor.inputs.enumerated().map { index, input in
            (input.name, try opCase.tensor("test_data_set_0/input_\(index).pb"))
        })
        let results = try executor.run(feeds)
        for (index, output) in executor.outputs.enumerated() {
            let want = try opCase.tensor("test_data_set_0/output_\(index).pb")
            let got = try #require(results[output.name], "\(opCase.name): \(output.name) missing")
            #expect(got.dtype == want.dtype && got.shape == want.shape, "\(opCase.name): \(got) vs \(want)")
            // 4 units in the last place of the largest reference value (outputs such as
            // LogSoftmax's x − max − log Σ carry the rounding of their largest term), else exactly.
            let unit = want.dtype == .float64 ? 0x1p-52 : want.dtype == .float16 ? 0x1p-10 : 0x1p-23
            let units = Self.rounded.contains(opCase.op) ? 4 * unit : 0.0
            let largest = try want.doubles().filter(\.isFinite).map(abs).max() ?? 0
            let comparison = try TensorComparison(got, want, absolute: units * largest, relative: 0)
            #expect(comparison.mismatches == 0, "\(opCase.name) (\(opCase.what); \(opCase.reference)): \(comparison)")
        }
    }

    /// float64 gradients through the reverse pass against PyTorch's; both sides evaluate the same
    /// formula, so they agree to rounding: 1e-12 relative (+1e-15 absolute for exact zeros), NaN
    /// where PyTorch's is, and within 4 units in the last place of the largest gradient.
    @Test(arguments: OpCase.all.filter { $0.gradient != nil })
    func gradientMatchesPyTorch(_ opCase: OpCase) throws {
        let folder = try opCase.folder()
        let executor = try Executor(model: Model(contentsOf: folder.appendingPathComponent("model.onnx")))
        let names = executor.inputs.map(\.name)
        let feeds = Dictionary(uniqueKeysWithValues: try names.indices.map { (names[$0], try opCase.tensor("test_data_set_0/input_\($0).pb")) })
        let upstream = try opCase.tensor("gradient/upstream.pb")
        let wrt = Array(names.prefix(opCase.gradientInputs ?? 1))
        let result = try executor.gradients(feeds, seed: { _ in upstream }, wrt: wrt)
        for (k, name) in wrt.enumerated() {
            let expected = try opCase.tensor("gradient/input_\(k).pb")
            let got = try #require(result.gradients[name])
            let relative = try TensorComparison(got, expected, absolute: 1e-15, relative: 1e-12)
            #expect(relative.mismatches == 0, "\(opCase.name) ∂/∂\(name) vs \(opCase.gradient ?? ""): \(relative)")
            let largest = try expected.doubles().filter(\.isFinite).map(abs).max() ?? 0
            let units = try TensorComparison(got, expected, absolute: 4 * 0x1p-52 * largest, relative: 0)
            #expect(units.mismatches == 0, "\(opCase.name) ∂/∂\(name) vs \(opCase.gradient ?? ""): \(units)")
        }
    }
}

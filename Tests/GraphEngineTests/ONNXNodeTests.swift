import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// One upstream ONNX backend node test: `model.onnx` plus `test_data_set_*/{input,output}_*.pb`.
struct NodeTestCase: CustomTestStringConvertible, Sendable {
    let name: String
    let note: String
    /// The folder under `Fixtures/` holding the case (the same layout serves other single-node
    /// cases); the upstream tests themselves come packed in `onnx-node/tests.tar.gz`.
    var root = "onnx-node"

    var testDescription: String { name }

    /// Runs every data set; returns a failure description, or nil when all outputs match.
    func run() throws -> String? {
        let folder = try (root == "onnx-node" ? Fixtures.unpacked(NodeTestList.archive) : Fixtures.url(root)).appendingPathComponent(name)
        let model = try Model(contentsOf: folder.appendingPathComponent("model.onnx"))
        let executor = try Executor(model: model)
        let sets = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix("test_data_set_") }.sorted()
        guard !sets.isEmpty else { return "no test data sets" }
        for set in sets {
            let directory = folder.appendingPathComponent(set)
            func tensors(_ prefix: String, _ count: Int) throws -> [Tensor] {
                try (0..<count).map { try Tensor(tensorProtoAt: directory.appendingPathComponent("\(prefix)_\($0).pb")) }
            }
            let inputs = try tensors("input", executor.inputs.count)
            let expected = try tensors("output", executor.outputs.count)
            let feeds = Dictionary(uniqueKeysWithValues: zip(executor.inputs.map(\.name), inputs))
            let results = try executor.run(feeds)
            for (output, want) in zip(executor.outputs, expected) {
                guard let got = results[output.name] else { return "\(set): output \(output.name) missing" }
                guard got.dtype == want.dtype, got.shape == want.shape else {
                    return "\(set): \(output.name) is \(got.dtype)\(got.shape), expected \(want.dtype)\(want.shape)"
                }
                // The ONNX backend runner's own tolerance: numpy.testing.assert_allclose(rtol=1e-3, atol=1e-7).
                let comparison = try TensorComparison(got, want, absolute: 1e-7, relative: 1e-3)
                if comparison.mismatches > 0 { return "\(set): \(output.name): \(comparison)" }
            }
        }
        return nil
    }
}

/// The allowlist beside this file: which upstream node tests run, and why the others do not.
enum NodeTestList {
    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("onnx-node-tests.txt")
    /// The upstream tests the `run` lines name, written by `tools/copy_node_tests.py`.
    static let archive = "onnx-node/tests.tar.gz"

    /// Parsed lines: (`run` or `skip`, test name, note).
    static let entries: [(kind: String, name: String, note: String)] = {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            guard fields.count >= 2, fields[0] == "run" || fields[0] == "skip" else { return nil }
            let note = fields.count > 2 ? fields[2].trimmingCharacters(in: .whitespaces) : ""
            return (String(fields[0]), String(fields[1]), note)
        }
    }()

    static let runs = entries.filter { $0.kind == "run" }.map { NodeTestCase(name: $0.name, note: $0.note) }
}

@Suite struct ONNXNodeTests {
    @Test(arguments: NodeTestList.runs)
    func passes(_ test: NodeTestCase) throws {
        let failure = try test.run()
        #expect(failure == nil, "\(test.name): \(failure ?? "")")
    }

    @Test func allowlistAndFixturesAgree() throws {
        #expect(NodeTestList.runs.count >= 400)
        #expect(NodeTestList.entries.filter { $0.kind == "skip" }.allSatisfy { !$0.note.isEmpty }, "every skip gives a reason")
        let unpacked = try Fixtures.unpacked(NodeTestList.archive)
        let copied = Set(try FileManager.default.contentsOfDirectory(atPath: unpacked.path).filter { $0.hasPrefix("test_") })
        let listed = Set(NodeTestList.runs.map(\.name))
        #expect(listed.subtracting(copied).isEmpty, "allowlisted but not copied: \(listed.subtracting(copied).sorted())")
        #expect(copied.subtracting(listed).isEmpty, "copied but not allowlisted: \(copied.subtracting(listed).sorted())")
    }
}

import Foundation
import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// `Fixtures/recurrent/manifest.json`, written by `tools/export_recurrent_goldens.py`.
struct RecurrentManifest: Decodable {
    struct Case: Decodable, CustomTestStringConvertible, Sendable {
        let name: String
        let dtype: String
        var testDescription: String { name }
        /// The case's folder in `recurrent/ops.tar.gz`.
        func folder() throws -> URL { try Fixtures.unpacked("recurrent/ops.tar.gz").appendingPathComponent(name) }
    }

    struct Export: Decodable, CustomTestStringConvertible, Sendable {
        let name, file, input, logits: String
        let inputGradient: String
        let classes: [Int]
        var testDescription: String { name }

        enum CodingKeys: String, CodingKey {
            case name, file, input, logits, classes
            case inputGradient = "input_gradient"
        }
    }

    let cases: [Case]
    let models: [Export]

    static let committed: RecurrentManifest? = {
        guard let data = try? Data(contentsOf: Fixtures.url("recurrent/manifest.json")) else { return nil }
        return try? JSONDecoder().decode(RecurrentManifest.self, from: data)
    }()
}

/// One golden case: its model, inputs and expected outputs (the node-test layout).
struct GoldenCase {
    let model: Model
    let inputs: [String: Tensor]
    let expected: [(name: String, tensor: Tensor)]

    init(folder: URL) throws {
        model = try Model(contentsOf: folder.appendingPathComponent("model.onnx"))
        let set = folder.appendingPathComponent("test_data_set_0")
        inputs = Dictionary(uniqueKeysWithValues: try model.graph.inputs.enumerated().map { index, input in
            (input.name, try Tensor(tensorProtoAt: set.appendingPathComponent("input_\(index).pb")))
        })
        expected = try model.graph.outputs.enumerated().map { index, output in
            (output.name, try Tensor(tensorProtoAt: set.appendingPathComponent("output_\(index).pb")))
        }
    }

    /// The same case with every float32 input and initializer widened to float64.
    func widened() throws -> GoldenCase {
        var model = self.model
        for index in model.graph.inputs.indices where model.graph.inputs[index].elementType == .float32 {
            model.graph.inputs[index].elementType = .float64
        }
        for index in model.graph.outputs.indices { model.graph.outputs[index].elementType = .float64 }
        model.graph.initializers = try model.graph.initializers.mapValues { $0.dtype == .float32 ? try $0.converted(to: .float64) : $0 }
        let inputs = try self.inputs.mapValues { $0.dtype == .float32 ? try $0.converted(to: .float64) : $0 }
        return GoldenCase(model: model, inputs: inputs, expected: expected)
    }

    private init(model: Model, inputs: [String: Tensor], expected: [(name: String, tensor: Tensor)]) {
        (self.model, self.inputs, self.expected) = (model, inputs, expected)
    }

    /// Descriptions of the outputs that differ from the golden by more than `absolute + relative·|expected|`.
    func mismatches(absolute: Double, relative: Double) throws -> [String] {
        let results = try Executor(model: model).run(inputs)
        return try expected.compactMap { name, want in
            guard let got = results[name] else { return "\(name) missing" }
            guard got.shape == want.shape else { return "\(name) is \(got.shape), expected \(want.shape)" }
            let comparison = try TensorComparison(got.converted(to: want.dtype), want, absolute: absolute, relative: relative)
            return comparison.mismatches == 0 ? nil : "\(name): \(comparison)"
        }
    }
}

/// RNN, GRU and LSTM against onnxruntime (single nodes in every configuration) and against
/// tiny PyTorch models exported to ONNX (forward vs onnxruntime, input gradient vs autograd).
@Suite struct RecurrentTests {
    static let manifest = RecurrentManifest.committed
    static let cases = manifest?.cases ?? []
    static let exports = manifest?.models ?? []

    @Test func manifestIsPresent() {
        #expect(Self.cases.count == 19)
        #expect(Self.exports.count == 5)
    }

    /// float32 against onnxruntime's float32: both sum in float32, in different orders (BLAS or
    /// our packed kernels against MLAS), over up to 6 steps of outputs below 2.3 in magnitude.
    /// The largest difference measured is 2.4e-7, so 2e-6 absolute leaves 8x headroom (a relative
    /// bound alone would not do: outputs near zero differ by up to 5e-4 of themselves).
    /// float16: our float32 result rounded once against onnxruntime's, rounded once; a float32
    /// difference next to a rounding boundary would flip one float16 unit (under 2⁻¹⁰ relative),
    /// which the node tests' 1e-3 relative admits. Measured: identical.
    static func tolerance(_ dtype: String) -> (absolute: Double, relative: Double) {
        dtype == "float16" ? (1e-7, 1e-3) : (2e-6, 0)
    }

    @Test(arguments: cases)
    func matchesOnnxruntime(_ golden: RecurrentManifest.Case) throws {
        let tolerance = Self.tolerance(golden.dtype)
        let mismatches = try GoldenCase(folder: golden.folder()).mismatches(absolute: tolerance.absolute, relative: tolerance.relative)
        #expect(mismatches == [], "\(golden.name)")
    }

    /// The float64 path on the same (exactly widened) inputs: within float32 rounding of
    /// onnxruntime's float32 result, the same tolerance as above (largest measured 2.4e-7).
    @Test(arguments: cases.filter { $0.dtype == "float32" })
    func float64MatchesOnnxruntime(_ golden: RecurrentManifest.Case) throws {
        let mismatches = try GoldenCase(folder: golden.folder()).widened().mismatches(absolute: 2e-6, relative: 0)
        #expect(mismatches == [], "\(golden.name)")
    }

    /// Logits against onnxruntime, with the single nodes' tolerance (largest measured 6e-8). The
    /// input gradient of `Σₙ logits[n, cₙ]` against PyTorch autograd run in float64, relative to
    /// its largest element: ours is float32 through up to 2 layers × 10 steps; the largest
    /// deviation measured is 1.7e-7, so 2e-6 leaves 10x headroom.
    @Test(arguments: exports)
    func exportedModelMatchesOnnxruntimeAndAutograd(_ export: RecurrentManifest.Export) throws {
        let executor = try Executor(model: try Model(contentsOf: Fixtures.url("recurrent/\(export.file)")))
        let input = try Tensor(npyAt: Fixtures.url("recurrent/\(export.input)"))
        let logits = try #require(try executor.run(["input": input])["logits"])
        let forward = try TensorComparison(logits, try Tensor(npyAt: Fixtures.url("recurrent/\(export.logits)")), absolute: 2e-6, relative: 0)
        #expect(forward.mismatches == 0, "\(export.name) logits: \(forward)")
        let result = try executor.gradients(["input": input], seed: logitSeed(export.classes), wrt: ["input"])
        let expected = try Tensor(npyAt: Fixtures.url("recurrent/\(export.inputGradient)"))
        let gradient = try TensorComparison(try #require(result.gradients["input"]), expected)
        #expect(gradient.sameShape && gradient.relativeToLargest <= 2e-6, "\(export.name) input gradient: \(gradient)")
        #expect(gradient.maxExpectedMagnitude > 0)
    }

    /// Runs one node on `inputs` (positions as in the node; `nil` omits one) and returns the
    /// error text, or "no error".
    static func failure(
        _ op: String, _ attributes: [String: Attribute], _ inputs: [Tensor?], opset: Int = 22
    ) -> String {
        let names = inputs.indices.map { inputs[$0] == nil ? "" : "i\($0)" }
        let node = Node(name: "rnn", opType: op, inputs: names, outputs: ["y"], attributes: attributes)
        let feeds = Dictionary(uniqueKeysWithValues: inputs.indices.compactMap { i in inputs[i].map { ("i\(i)", $0) } })
        let model = Model(
            opsets: ["": opset],
            graph: Graph(
                nodes: [node], initializers: [:],
                inputs: feeds.keys.sorted().map { ValueInfo(name: $0, elementType: feeds[$0]?.dtype) },
                outputs: [ValueInfo(name: "y", elementType: nil)]))
        return errorText { try Executor(model: model).run(feeds) }
    }

    /// Bad shapes, lengths and attributes are errors that name the node, the input and the dimension.
    @Test func badInputsAndAttributesAreNamed() throws {
        let x = try randomTensor([3, 2, 4], seed: 1)
        let w = try randomTensor([1, 12, 4], seed: 2)
        let r = try randomTensor([1, 12, 3], seed: 3)
        let hidden: [String: Attribute] = ["hidden_size": .int(3)]
        #expect(Self.failure("LSTM", hidden, [x, w, r]) == "no error")
        #expect(Self.failure("LSTM", hidden, [x, try randomTensor([1, 8, 4], seed: 2), r])
            .contains("node 'rnn' (LSTM) failed: input W has shape [1, 8, 4]: dimension 1 must be 4·hidden_size = 12"))
        #expect(Self.failure("GRU", hidden, [x, try randomTensor([1, 9, 5], seed: 2), try randomTensor([1, 9, 3], seed: 3)])
            .contains("input W has shape [1, 9, 5]: dimension 2 must be input_size (X's last dimension) = 4"))
        #expect(Self.failure("LSTM", ["hidden_size": .int(3), "direction": .string("bidirectional")], [x, w, r])
            .contains("input W has shape [1, 12, 4]: dimension 0 must be num_directions = 2"))
        #expect(Self.failure("LSTM", ["hidden_size": .int(4)], [x, try randomTensor([1, 16, 4], seed: 2), r])
            .contains("input R has shape [1, 12, 3]: dimension 1 must be 4·hidden_size = 16"))
        #expect(Self.failure("LSTM", hidden, [x, w, r, try randomTensor([1, 12], seed: 4)])
            .contains("input B has shape [1, 12]: dimension 1 must be 2·4·hidden_size = 24"))
        #expect(Self.failure("LSTM", hidden, [x, w, r, nil, nil, try randomTensor([1, 3, 3], seed: 5)])
            .contains("input initial_h has shape [1, 3, 3]: dimension 1 must be batch = 2"))
        #expect(Self.failure("LSTM", ["hidden_size": .int(3), "layout": .int(1)], [x, w, r, nil, nil, nil, try randomTensor([1, 3, 3], seed: 5)])
            .contains("input initial_c has shape [1, 3, 3]: dimension 0 must be batch = 3"))
        #expect(Self.failure("LSTM", hidden, [x, w, r, nil, nil, nil, nil, try randomTensor([1, 6], seed: 6)])
            .contains("input P has shape [1, 6]: dimension 1 must be 3·hidden_size = 9"))
        #expect(Self.failure("LSTM", hidden, [x, w, r, nil, try Tensor(shape: [2], scalars: [Int32(3), 4])])
            .contains("sequence_lens[1] is 4; it must lie in 0...3 (seq_length)"))
        #expect(Self.failure("LSTM", hidden, [x, w, r, nil, try Tensor(shape: [2], scalars: [Int32(3), -1])])
            .contains("sequence_lens[1] is -1"))
        #expect(Self.failure("LSTM", hidden, [try randomTensor([3, 2], seed: 1), w, r])
            .contains("input X must have rank 3 ([seq_length, batch, input_size]), got shape [3, 2]"))
        #expect(Self.failure("LSTM", hidden, [x, try w.converted(to: .float32), r]).contains("input W is float32 but X is float64"))
        #expect(Self.failure("LSTM", ["activations": .strings(["Sigmoid", "Tanh"])], [x, w, r]).contains("needs 3 functions per direction (3 in all), got 2"))
        #expect(Self.failure("RNN", ["activations": .strings(["Swish"])], [x, try randomTensor([1, 3, 4], seed: 2), try randomTensor([1, 3, 3], seed: 3)])
            .contains("'Swish' is not one of the supported functions"))
        #expect(Self.failure("GRU", ["direction": .string("both")], [x, w, r]).contains("must be forward, reverse or bidirectional, got 'both'"))
        #expect(Self.failure("GRU", ["clip": .float(-1)], [x, w, r]).contains("must be a positive threshold, got -1.0"))
        #expect(Self.failure("GRU", ["hidden_size": .int(Int.max / 2)], [x, w, r]).contains("hidden_size \(Int.max / 2) is out of range"))
    }

    /// The clip tests above mean something: with these inputs the threshold changes the result.
    @Test func clipThresholdsAreReached() throws {
        for configuration in RecurrentGradientTests.cellVariants where configuration.attributes["clip"] != nil {
            var unclipped = configuration
            unclipped.attributes["clip"] = nil
            let clipped = try configuration.outputs(), plain = try unclipped.outputs()
            #expect(zip(clipped, plain).contains { $0 != $1 }, "\(configuration.testDescription)")
        }
    }
}

import Foundation
import ONNXModel
import TensorCore
import TestSupport
import Testing

@Suite struct ModelLoadingTests {
    @Test func decodesAnExportedModel() throws {
        let model = try Model(contentsOf: Fixtures.url("models/resnet_basic_ts17.onnx"))
        #expect(model.defaultOpset == 17)
        #expect(model.producer.hasPrefix("pytorch"))
        #expect(model.graph.inputs.map(\.name) == ["input"])
        #expect(model.graph.inputs[0].elementType == .float32)
        #expect(model.graph.inputs[0].shape?.count == 4)
        #expect(model.graph.inputs[0].shape?[1] == .fixed(3))
        #expect(model.graph.outputs.map(\.name) == ["logits"])
        let conv = try #require(model.graph.nodes.first { $0.opType == "Conv" })
        #expect(try conv.attribute("kernel_shape", as: [Int].self) == [7, 7])
        #expect(try conv.attribute("group", default: 1) == 1)
        let weight = try #require(model.graph.initializers[conv.inputs[1]])
        #expect(weight.dtype == .float32 && weight.rank == 4)
    }

    /// paddle2onnx writes `-1` and `?` for free axes, other writers `0`, blank dims or names: all dynamic.
    @Test func freeAxesInAnySpellingAreDynamic() throws {
        let data = ONNXBuilder(
            nodes: [
                .init(
                    "Constant", [], ["w"], name: "weights",
                    tensors: ["value": .float("w", dims: [2, 3], [1, 2, 3, 4, 5, 6])]),
                .init("Relu", ["x"], ["y"]),
            ],
            inputs: [.init("x", shape: [-1, 3, "?", .blank]), .init("z", shape: [0, "batch", "-1", 7])],
            outputs: [.init("y", shape: [-1, 3, "?", .blank])]
        ).serialized()
        let model = try Model(serializedData: data)
        #expect(model.graph.inputs[0].shape == [.unknown, .fixed(3), .unknown, .unknown])
        #expect(model.graph.inputs[1].shape == [.unknown, .symbolic("batch"), .unknown, .fixed(7)])
        #expect(model.graph.inputs[1].shape?.map(\.fixedExtent) == [nil, nil, nil, 7])
        #expect(Dimension.fixed(-1).fixedExtent == nil && Dimension.fixed(0).fixedExtent == nil)
        // Weights in Constant nodes count as parameters.
        #expect(model.graph.parameterCount == 6)
        #expect(try model.graph.nodes[0].constantValue()?.shape == [2, 3])
        #expect(try model.graph.nodes[1].constantValue() == nil)
    }

    @Test func readsDynamoNodeMetadata() throws {
        let model = try Model(contentsOf: Fixtures.url("models/resnet_basic_dyn18.onnx"))
        let scoped = model.graph.nodes.filter { $0.metadata["pkg.torch.onnx.name_scopes"] != nil }
        #expect(scoped.count > model.graph.nodes.count / 2)
    }

    @Test func externalDataMatchesTheEmbeddedTwin() throws {
        let external = try Model(contentsOf: Fixtures.url("models/densenet_dyn18_extdata.onnx"))
        let embedded = try Model(contentsOf: Fixtures.url("models/densenet_dyn18.onnx"))
        #expect(external.graph.initializers.count == embedded.graph.initializers.count)
        for (name, tensor) in embedded.graph.initializers {
            let twin = try #require(external.graph.initializers[name])
            #expect(twin.shape == tensor.shape)
            #expect(twin.withUnsafeBytes { Array($0) } == tensor.withUnsafeBytes { Array($0) }, "\(name)")
        }
    }

    @Test func typedAttributeGettersApplyDefaultsAndNameTheNode() throws {
        let node = Node(
            name: "/features/conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"],
            attributes: ["group": .int(2), "pads": .ints([1, 1, 1, 1]), "auto_pad": .string("NOTSET")])
        #expect(try node.attribute("group", default: 1) == 2)
        #expect(try node.attribute("strides", as: [Int].self) == nil)
        #expect(try node.attribute("alpha", default: Float(1)) == 1)
        do {
            _ = try node.attribute("pads", as: Int.self)
            Issue.record("a list read as a scalar")
        } catch let error as ONNXError {
            #expect(error.description.contains("/features/conv"))
            #expect(error.description.contains("INTS"))
        }
        #expect(throws: ONNXError.self) { try node.requiredAttribute("kernel_shape", as: [Int].self) }
    }

    @Test func decodesTypedDataFields() throws {
        let model = try Model(
            serializedData: ONNXBuilder(
                nodes: [.init("Add", ["a", "b"], ["c"])],
                initializers: [
                    .init("b", dims: [2], data: .floats([1.5, -2])),
                    .init("i", dataType: 7, dims: [3], data: .int64s([1, -2, 3])),
                ],
                inputs: [.init("a", dims: [2])], outputs: [.init("c", dims: [2])]
            ).serialized())
        #expect(try model.graph.initializers["b"]?.scalars(as: Float.self) == [1.5, -2])
        #expect(try model.graph.initializers["i"]?.scalars(as: Int64.self) == [1, -2, 3])
        #expect(model.graph.inputs.map(\.name) == ["a"])
    }
}

/// Broken files: each is a typed error with a message a user can act on, never a crash.
@Suite struct BadModelTests {
    func load(_ bytes: Data, name: String = "model.onnx") throws -> Model {
        let folder = try Fixtures.temporaryDirectory()
        let url = folder.appendingPathComponent(name)
        try bytes.write(to: url)
        return try Model(contentsOf: url)
    }

    @Test func notAnONNXFile() throws {
        #expect(errorText { try load(Data("name,group\na.png,1\n".utf8)) }.contains("not a readable ONNX model"))
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]
        #expect(errorText { try load(Data(png)) }.contains("ONNX"))
        #expect(errorText { try load(Data()) }.contains("empty"))
        #expect(errorText { try Model(contentsOf: URL(fileURLWithPath: "/nonexistent/model.onnx")) }.contains("cannot read"))
    }

    @Test func everyTruncationIsAnError() throws {
        let bytes = try Data(contentsOf: Fixtures.url("models/resnet_basic_ts17.onnx"))
        let cuts = stride(from: 1, to: bytes.count, by: max(1, bytes.count / 97)).map { $0 } + [bytes.count - 1]
        for cut in cuts {
            #expect(errorText { try load(bytes.prefix(cut)) } != "no error", "cut at \(cut) of \(bytes.count) bytes")
        }
    }

    @Test func absurdDeclaredSizesAreRejectedBeforeAllocating() throws {
        func model(_ tensor: ONNXBuilder.TensorSpec) -> Data {
            ONNXBuilder(
                nodes: [.init("Add", ["a", tensor.name], ["c"])], initializers: [tensor],
                inputs: [.init("a", dims: [2])], outputs: [.init("c", dims: [2])]
            ).serialized()
        }
        let huge = errorText { try load(model(.init("w", dims: [1 << 40, 1 << 40], data: .raw([0, 0, 0, 0])))) }
        #expect(huge.contains("too large"))
        let mismatch = errorText { try load(model(.init("w", dims: [1 << 30], data: .raw([0, 0, 0, 0])))) }
        #expect(mismatch.contains("needs 4294967296 bytes but raw_data holds 4"))
        let negative = errorText { try load(model(.init("w", dims: [-3], data: .raw([])))) }
        #expect(negative.contains("negative"))
        let typed = errorText { try load(model(.init("w", dims: [3], data: .floats([1, 2])))) }
        #expect(typed.contains("float_data holds 2 values"))
        let bfloat = errorText { try load(model(.init("w", dataType: 16, dims: [1], data: .raw([0, 0])))) }
        #expect(bfloat.contains("BFLOAT16"))
    }

    @Test func externalDataMustStayInsideTheModelFolder() throws {
        let folder = try Fixtures.temporaryDirectory()
        let inside = folder.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: inside, withIntermediateDirectories: true)
        try Data(repeating: 0, count: 64).write(to: folder.appendingPathComponent("secret.bin"))
        try Data(repeating: 0, count: 64).write(to: inside.appendingPathComponent("weights.bin"))
        try FileManager.default.createSymbolicLink(
            at: inside.appendingPathComponent("link.bin"), withDestinationURL: folder.appendingPathComponent("secret.bin"))

        func attempt(_ entries: [(String, String)]) -> String {
            let builder = ONNXBuilder(
                nodes: [.init("Add", ["a", "w"], ["c"])],
                initializers: [.init("w", dims: [2], data: .external(entries))],
                inputs: [.init("a", dims: [2])], outputs: [.init("c", dims: [2])])
            let url = inside.appendingPathComponent("model.onnx")
            return errorText {
                try builder.write(to: url)
                return try Model(contentsOf: url)
            }
        }
        #expect(attempt([("location", "weights.bin"), ("offset", "8"), ("length", "8")]) == "no error")
        #expect(attempt([("location", "../secret.bin")]).contains("'..'"))
        #expect(attempt([("location", "/etc/passwd")]).contains("absolute"))
        #expect(attempt([("location", "link.bin")]).contains("outside the model's folder"))
        #expect(attempt([("location", "missing.bin")]).contains("does not exist"))
        #expect(attempt([("location", "weights.bin"), ("offset", "60")]).contains("beyond the end"))
        #expect(attempt([("location", "weights.bin"), ("length", "4")]).contains("needs 8"))
        // Bytes in memory have no folder to read from.
        let bytes = ONNXBuilder(
            nodes: [.init("Add", ["a", "w"], ["c"])],
            initializers: [.init("w", dims: [2], data: .external([("location", "weights.bin")]))],
            inputs: [.init("a", dims: [2])], outputs: [.init("c", dims: [2])]
        ).serialized()
        #expect(errorText { try Model(serializedData: bytes) }.contains("not loaded from a file"))
    }
}

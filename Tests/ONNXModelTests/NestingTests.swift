import Foundation
import ONNXModel
import TestSupport
import Testing

/// Subgraphs and types nest recursively; a few KB nesting them thousands deep overflowed the stack
/// of the recursive decoders (protobuf-c's and ours) and killed even `inspect`.
@Suite struct NestingTests {
    @Test func deepGraphsAreRefusedBeforeDecoding() throws {
        // 33 levels of three messages, plus the model: past the limit of 100.
        for depth in [33, 3000] {
            #expect(errorText { try Model(serializedData: NestedModels.nestedGraphs(depth)) }
                == "<memory> is not a readable ONNX model: it nests graphs or types more than 100 messages deep")
        }
        let allowed = try Model(serializedData: NestedModels.nestedGraphs(32))
        #expect(allowed.graph.nodes.first?.opType == "If")
    }

    @Test func deepTypesAreRefusedBeforeDecoding() throws {
        #expect(errorText { try Model(serializedData: NestedModels.nestedTypes(5000)) }.contains("more than 100 messages deep"))
        let allowed = try Model(serializedData: NestedModels.nestedTypes(40))
        #expect(allowed.graph.inputs.first?.name == "x")
    }
}

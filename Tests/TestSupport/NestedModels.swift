import Foundation

/// Models whose messages nest deeply: the shape of a stack-overflow attack on a recursive decoder.
public enum NestedModels {
    /// A model whose graph holds an `If` node whose branch holds an `If` node ... `depth` graphs
    /// down (three messages per level: graph, node, attribute).
    public static func nestedGraphs(_ depth: Int) -> Data {
        var graph = ProtoWriter()
        for _ in 0..<depth {
            var outer = ProtoWriter()
            outer.message(1) { node in
                node.string(4, "If")
                node.message(5) { attribute in
                    attribute.string(1, "then_branch")
                    attribute.int(20, 5)  // GRAPH
                    attribute.data(6, graph.bytes)
                }
            }
            graph = outer
        }
        return model(graph: graph.bytes)
    }

    /// A model with one input whose type is a sequence of a sequence of ... `depth` types down.
    public static func nestedTypes(_ depth: Int) -> Data {
        var type = ProtoWriter()
        type.message(1) { $0.int(1, 1) }  // tensor of float
        for _ in 0..<depth {
            var outer = ProtoWriter()
            outer.message(4) { $0.data(1, type.bytes) }  // sequence_type.elem_type
            type = outer
        }
        var graph = ProtoWriter()
        graph.message(11) { input in
            input.string(1, "x")
            input.data(2, type.bytes)
        }
        return model(graph: graph.bytes)
    }

    private static func model(graph: [UInt8]) -> Data {
        var model = ProtoWriter()
        model.int(1, 8)
        model.message(8) { $0.string(1, ""); $0.int(2, 17) }
        model.data(7, graph)
        return Data(model.bytes)
    }
}

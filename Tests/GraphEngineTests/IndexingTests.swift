import GraphEngine
import ONNXModel
import TensorCore
import TestSupport
import Testing

/// Index tensors and sizes come from model files: bad ones are errors that name the node and
/// the index, and sizes computed from values are checked before anything is allocated.
@Suite struct IndexingTests {
    /// Runs one node named "under_test" whose inputs are all fed.
    func run(_ op: String, _ attributes: [String: Attribute] = [:], opset: Int = 18, inputs: [Tensor], outputs: Int = 1) throws -> [Tensor] {
        let names = inputs.indices.map { "x\($0)" }
        let node = Node(name: "under_test", opType: op, inputs: names, outputs: (0..<outputs).map { "y\($0)" }, attributes: attributes)
        let model = Model(
            opsets: ["": opset],
            graph: Graph(
                nodes: [node], initializers: [:], inputs: zip(names, inputs).map { ValueInfo(name: $0, elementType: $1.dtype) },
                outputs: (0..<outputs).map { ValueInfo(name: "y\($0)", elementType: nil) }))
        let executor = try Executor(model: model)
        let results = try executor.run(Dictionary(uniqueKeysWithValues: zip(names, inputs)))
        return try (0..<outputs).map { try #require(results["y\($0)"]) }
    }

    /// The error `body` throws, as text; "no error" when it throws none.
    func failure(_ body: () throws -> Any) -> String {
        do {
            _ = try body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    let data: Tensor

    init() throws { data = try randomTensor([2, 3], seed: 80, dtype: .float32) }

    @Test func outOfRangeIndicesAreErrorsNamingTheIndex() throws {
        let gather = failure { try run("GatherElements", ["axis": .int(1)], inputs: [data, try Tensor(shape: [2, 2], scalars: [Int64(0), 1, -4, 2])]) }
        #expect(gather.contains("under_test") && gather.contains("index -4 at indices[1, 0]") && gather.contains("extent 3"), "\(gather)")
        let nd = failure { try run("GatherND", inputs: [data, try Tensor(shape: [1, 2], scalars: [Int64(1), 3])]) }
        #expect(nd.contains("index 3 at indices[0, 1]") && nd.contains("axis 1"), "\(nd)")
        let scatter = failure {
            try run("ScatterElements", inputs: [data, try Tensor(shape: [1, 1], scalars: [Int32(2)]), try Tensor(shape: [1, 1], scalars: [Float(1)])])
        }
        #expect(scatter.contains("index 2 at indices[0, 0]") && scatter.contains("axis 0 of extent 2"), "\(scatter)")
        let scatterND = failure {
            try run("ScatterND", inputs: [data, try Tensor(shape: [1, 1], scalars: [Int64(-3)]), try Tensor(shape: [1, 3], scalars: [Float](repeating: 1, count: 3))])
        }
        #expect(scatterND.contains("index -3 at indices[0, 0]"), "\(scatterND)")
    }

    @Test func indexShapesAreChecked() throws {
        let rank = failure { try run("GatherElements", inputs: [data, try int64s([0])]) }
        #expect(rank.contains("must have the rank of data"), "\(rank)")
        let longer = failure { try run("GatherElements", ["axis": .int(1)], inputs: [data, try Tensor(shape: [3, 1], scalars: [Int64(0), 0, 0])]) }
        #expect(longer.contains("longer than data"), "\(longer)")
        let updates = failure { try run("ScatterND", inputs: [data, try Tensor(shape: [1, 1], scalars: [Int64(0)]), try int64s([1, 2, 3])]) }
        #expect(updates.contains("updates are int64[3]"), "\(updates)")
        let tuple = failure { try run("GatherND", inputs: [data, try Tensor(shape: [1, 3], scalars: [Int64(0), 0, 0])]) }
        #expect(tuple.contains("tuples of length 3"), "\(tuple)")
    }

    @Test func rangeCountsAreCheckedBeforeAllocation() throws {
        func range<T: TensorScalar>(_ start: T, _ limit: T, _ delta: T) throws -> [Tensor] {
            try run("Range", opset: 11, inputs: [Tensor(scalar: start), Tensor(scalar: limit), Tensor(scalar: delta)])
        }
        #expect(failure { try range(Int64(0), Int64.max, Int64(1)) }.contains("elements"))
        #expect(failure { try range(Int64.min, Int64.max, Int64.max) }.contains("no error"))  // 3 elements, no overflow
        #expect(try range(Int64.min, Int64.max, Int64.max)[0].scalars(as: Int64.self) == [Int64.min, -1, Int64.max - 1])
        #expect(failure { try range(Int64(0), Int64(1) << 40, Int64(1)) }.contains("bytes"))  // 8 TB: refused by the allocator
        #expect(failure { try range(0.0, 1e300, 1e-300) }.contains("elements"))
        #expect(failure { try range(Int32(1), Int32(5), Int32(0)) }.contains("delta is 0"))
        #expect(failure { try range(Float(0), Float.nan, Float(1)) }.contains("elements"))
    }

    @Test func tileAndOneHotSizesAreChecked() throws {
        let tile = failure { try run("Tile", opset: 13, inputs: [data, try int64s([Int(Int64.max / 2) + 1, 1])]) }
        #expect(tile.contains("overflows"), "\(tile)")
        let product = failure { try run("Tile", opset: 13, inputs: [data, try int64s([1 << 31, 1 << 31])]) }
        #expect(product.contains("more elements than can be addressed") || product.contains("bytes"), "\(product)")
        #expect(failure { try run("Tile", opset: 13, inputs: [data, try int64s([2, -1])]) }.contains("negative entry -1"))
        #expect(failure { try run("Tile", opset: 13, inputs: [data, try int64s([2])]) }.contains("one entry per axis"))
        let values = try Tensor(shape: [2], scalars: [Float(0), 1])
        let huge = failure { try run("OneHot", opset: 11, inputs: [try int64s([1]), Tensor(scalar: Float(1e30)), values]) }
        #expect(huge.contains("depth must be one value from 1 up"), "\(huge)")
        #expect(failure { try run("OneHot", opset: 11, inputs: [try int64s([1]), Tensor(scalar: Int64(0)), values]) }.contains("depth"))
        #expect(failure { try run("OneHot", opset: 11, inputs: [try int64s([1, 2, 3]), Tensor(scalar: Int64(1) << 40), values]) }.contains("bytes"))
    }

    @Test func selectionArgumentsAreChecked() throws {
        #expect(failure { try run("TopK", opset: 11, inputs: [data, try int64s([4])], outputs: 2) }.contains("k = 4 is outside [0, 3]"))
        #expect(failure { try run("TopK", opset: 11, inputs: [data, try int64s([1, 2])], outputs: 2) }.contains("exactly one value"))
        let empty = try Tensor(zeros: .float32, shape: [2, 0])
        #expect(failure { try run("ArgMax", ["axis": .int(1)], opset: 13, inputs: [empty]) }.contains("empty"))
        #expect(failure { try run("ReduceMax", opset: 18, inputs: [data, try int64s([2])]) }.contains("axis 2 is out of range"))
        #expect(failure { try run("DepthToSpace", ["blocksize": .int(2)], opset: 13, inputs: [try Tensor(zeros: .float32, shape: [1, 6, 2, 2])]) }
            .contains("6 channels"))
        #expect(failure { try run("SpaceToDepth", ["blocksize": .int(3)], opset: 13, inputs: [try Tensor(zeros: .float32, shape: [1, 1, 4, 3])]) }
            .contains("4×3"))
        #expect(failure { try run("Trilu", opset: 14, inputs: [try int64s([1, 2])]) }.contains("at least 2 axes"))
    }

    @Test func attributeValuesAreCheckedAtLoad() throws {
        let mode = failure { try run("DepthToSpace", ["blocksize": .int(2), "mode": .string("RDC")], opset: 13, inputs: [data]) }
        #expect(mode.contains("mode") && mode.contains("RDC"), "\(mode)")
        let reduction = failure {
            try run("ScatterND", ["reduction": .string("mean")], opset: 18, inputs: [data, try int64s([0]), try int64s([0])])
        }
        #expect(reduction.contains("reduction") && reduction.contains("mean"), "\(reduction)")
        #expect(failure { try run("DepthToSpace", opset: 13, inputs: [data]) }.contains("blocksize"))
        #expect(failure { try run("TopK", opset: 9, inputs: [data], outputs: 2) }.contains("is required but missing"))
    }

    /// Scatter reductions that have no gradient rule say so instead of returning a wrong one.
    @Test func scatterGradientsCoverNoneAndAdd() throws {
        let check = GradientCheck(
            op: "ScatterElements", attributes: ["reduction": .string("mul")],
            inputs: [try randomTensor([3], seed: 81), try randomTensor([1], seed: 82)], constants: [(1, try int64s([1]))], opset: 18)
        let message = failure { try check.run() }
        #expect(message.contains("reductions none and add, not 'mul'"), "\(message)")
    }
}

import Foundation
import TestSupport
import Testing
@testable import TensorCore

@Suite struct TensorTests {
    @Test func shapesAreCheckedForOverflowAndNegatives() {
        #expect(throws: TensorError.negativeDimension(shape: [2, -1])) { try Shape.elementCount([2, -1]) }
        #expect(throws: TensorError.shapeTooLarge(shape: [1 << 40, 1 << 40])) { try Shape.elementCount([1 << 40, 1 << 40]) }
        #expect(throws: (any Error).self) { try Tensor(zeros: .float32, shape: [1 << 31, 1 << 31]) }
    }

    @Test func broadcastingFollowsNumPy() throws {
        #expect(try Shape.broadcast([2, 1, 3], [4, 1]) == [2, 4, 3])
        #expect(try Shape.broadcast([], [5]) == [5])
        #expect(throws: TensorError.notBroadcastable([2, 3], [4, 3])) { try Shape.broadcast([2, 3], [4, 3]) }
        #expect(Shape.broadcastStrides([3, 1], to: [2, 3, 4]) == [0, 1, 0])
    }

    @Test func readingWithTheWrongTypeThrows() throws {
        let x = try Tensor(shape: [2], scalars: [Int64(1), 2])
        #expect(throws: TensorError.dtypeMismatch(expected: .float32, got: .int64)) { try x.scalars(as: Float.self) }
        #expect(try x.integers() == [1, 2])
    }

    @Test func reshapeSharesStorageAndChecksCounts() throws {
        let x = try Tensor(shape: [2, 3], scalars: [Float](repeating: 1, count: 6))
        let y = try x.reshaped([3, 2])
        #expect(y.storage === x.storage)
        #expect(throws: (any Error).self) { try x.reshaped([4]) }
    }

    /// A block shares the storage when it starts on a 64-byte boundary and holds at least a
    /// quarter of it, outliving the tensor it came from; other blocks are copies. Out-of-range
    /// blocks throw.
    @Test func contiguousBlocksShareAlignedLargeBlocksAndCopyOthers() throws {
        var parent: Tensor? = try Tensor(shape: [3, 4, 16], scalars: (0..<192).map(Float.init))
        let source = try #require(parent)
        let value = try source.contiguousBlock(from: 128, shape: [4, 16])  // the third [4, 16] block, at byte 512
        #expect(value.storage.base == source.storage.base + 512)
        let whole = try source.contiguousBlock(from: 0, shape: [192])
        #expect(whole.storage === source.storage)
        let unaligned = try source.contiguousBlock(from: 1, shape: [4, 16])  // byte 4
        let small = try source.contiguousBlock(from: 16, shape: [2, 8])  // 64 bytes of 768
        let parentBytes = source.storage.base..<source.storage.base + source.byteCount
        for block in [unaligned, small] { #expect(!parentBytes.contains(block.storage.base)) }
        #expect(try unaligned.scalars(as: Float.self) == (1..<65).map(Float.init))
        #expect(try small.scalars(as: Float.self) == (16..<32).map(Float.init))
        #expect(throws: (any Error).self) { try source.contiguousBlock(from: 150, shape: [4, 16]) }
        #expect(throws: (any Error).self) { try source.contiguousBlock(from: -1, shape: [1]) }
        parent = nil
        // The shared block keeps its parent's buffer alive (AddressSanitizer checks the reads).
        #expect(try value.scalars(as: Float.self) == (128..<192).map(Float.init))
    }

    @Test func castTruncatesSaturatesAndNeverTraps() throws {
        let x = try Tensor(shape: [6], scalars: [Float(2.7), -2.7, .nan, .infinity, -1e30, 300])
        #expect(try x.converted(to: .int64).scalars(as: Int64.self) == [2, -2, 0, Int64.max, Int64.min, 300])
        #expect(try x.converted(to: .uint8).scalars(as: UInt8.self) == [2, 0, 0, 255, 0, 255])
        #expect(try x.converted(to: .bool).scalars(as: Bool.self) == [true, true, true, true, true, true])
        let big = try Tensor(shape: [2], scalars: [Int64(1) << 40 | 5, -1])
        #expect(try big.converted(to: .int32).scalars(as: Int32.self) == [5, -1])  // wraps like NumPy astype
        #expect(try big.converted(to: .float64).scalars(as: Double.self) == [Double(1 << 40 | 5), -1])
    }
}

@Suite struct NPYTests {
    @Test func roundTripsEveryType() throws {
        let tensors: [Tensor] = [
            try Tensor(shape: [2, 3], scalars: (0..<6).map { Float($0) / 3 }),
            try Tensor(shape: [4], scalars: [Int64.min, -1, 0, .max]),
            try Tensor(shape: [], scalars: [2.5]),
            try Tensor(shape: [2, 0], scalars: [UInt8]()),
            try Tensor(shape: [3], scalars: [true, false, true]),
        ]
        for tensor in tensors {
            let decoded = try Tensor(npyData: tensor.npyData())
            #expect(decoded.shape == tensor.shape && decoded.dtype == tensor.dtype)
            #expect(decoded.withUnsafeBytes { Array($0) } == tensor.withUnsafeBytes { Array($0) })
        }
    }

    @Test func readsFilesWrittenByNumPy() throws {
        let input = try Tensor(npyAt: Fixtures.url("models/inputs/resnet_basic.npy"))
        #expect(input.dtype == .float32)
        #expect(input.shape == [2, 3, 64, 64])
    }

    @Test func rejectsMalformedFilesWithAReason() throws {
        let good = try Tensor(shape: [4], scalars: [Float](repeating: 1, count: 4)).npyData()
        #expect(throws: (any Error).self) { try Tensor(npyData: Data("hello".utf8)) }
        #expect(throws: (any Error).self) { try Tensor(npyData: good.prefix(good.count - 1)) }
        #expect(throws: (any Error).self) { try Tensor(npyData: replacing(good, "False", "True ")) }
        do {
            _ = try Tensor(npyData: replacing(good, "<f4", "<c8"), path: "x.npy")
            Issue.record("complex dtype was accepted")
        } catch let error as TensorError {
            #expect(error.description.contains("unsupported dtype"))
        }
        #expect(throws: (any Error).self) { try Tensor(npyAt: URL(fileURLWithPath: "/nonexistent.npy")) }
    }
}

/// `data` with the first occurrence of ASCII `old` replaced by `new` (same length).
private func replacing(_ data: Data, _ old: String, _ new: String) -> Data {
    var copy = data
    if let range = copy.range(of: Data(old.utf8)) { copy.replaceSubrange(range, with: Data(new.utf8)) }
    return copy
}

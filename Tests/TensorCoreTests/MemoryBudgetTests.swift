import Foundation
import TestSupport
import Testing
@testable import TensorCore

/// The memory budget: sizes, the scoped limit, and the readers that must check before they allocate.
@Suite struct MemoryBudgetTests {
    @Test func sizesParseInPowersOf1024() throws {
        #expect(try MemoryBudget.parse("4G") == 4 << 30)
        #expect(try MemoryBudget.parse("512M") == 512 << 20)
        #expect(try MemoryBudget.parse("1.5GiB") == 3 << 29)
        #expect(try MemoryBudget.parse("64kb") == 64 << 10)
        #expect(try MemoryBudget.parse("1000") == 1000)
        for bad in ["", "0", "-1G", "nanG", "infM", "4Q", "G", "1e30T", "4 G B"] {
            #expect(throws: TensorError.invalidSize(text: bad)) { try MemoryBudget.parse(bad) }
        }
        #expect(MemoryBudget.describe(512) == "512 B")
        #expect(MemoryBudget.describe(10_000_000_000) == "9.3 GiB")
    }

    @Test func productsReportOverflowAndNegatives() {
        #expect(MemoryBudget.product(1 << 20, 1 << 20, 4) == 1 << 42)
        #expect(MemoryBudget.product(1 << 32, 1 << 32) == nil)
        #expect(MemoryBudget.product(3, -1) == nil)
        #expect(MemoryBudget.product() == 1)
    }

    @Test func theDefaultFollowsWhatTheSystemHasAvailable() {
        #expect(MemoryBudget.available > 0)
        #expect(MemoryBudget.available <= Int(clamping: ProcessInfo.processInfo.physicalMemory))
    }

    @Test func aScopedLimitRefusesTensorsScratchAndChecks() throws {
        try MemoryBudget.withLimit(1 << 20) {
            let text = errorText { try Tensor(zeros: .float32, shape: [1024, 1024]) }
            #expect(text.hasPrefix("a float32 tensor of shape [1024, 1024] needs 4.0 MiB (4194304 bytes), more than the memory budget allows (1.0 MiB"), "\(text)")
            #expect(throws: TensorError.self) { try BufferPool.withScratch(Float.self, count: 1 << 20) { _ in } }
            #expect(throws: TensorError.self) { try MemoryBudget.check(2 << 20, for: "a test buffer") }
            #expect(throws: TensorError.self) { try MemoryBudget.withReservation(2 << 20, for: "a test buffer") {} }
            // A scope counts what is allocated inside it (not other tests' tensors); nesting can only tighten.
            let kept = try Tensor(zeros: .float32, shape: [192 * 1024])
            #expect(throws: TensorError.self) { try Tensor(zeros: .float32, shape: [128 * 1024]) }
            MemoryBudget.withLimit(1 << 40) { #expect(throws: TensorError.self) { try MemoryBudget.check(512 << 10, for: "x") } }
            _ = kept
            #expect(try Tensor(zeros: .float32, shape: [64 * 1024]).count == 64 * 1024)  // exactly fills it
        }
        #expect(throws: TensorError.shapeTooLarge(shape: [Int.max, 4])) { try BufferPool.withScratch(Float.self, count: .max) { _ in } }
    }

    /// C6: the header's shape is checked against the payload before anything is allocated.
    @Test func npyPayloadIsCheckedBeforeAllocating() throws {
        func npy(_ descr: String, _ shape: String, payload: Int = 0) -> Data {
            var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
            header += String(repeating: " ", count: (64 - (10 + header.utf8.count + 1) % 64) % 64) + "\n"
            return Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0]) + Data(header.utf8) + Data(count: payload)
        }
        // 9.8 GB claimed by 128 bytes: refused under a 1 MiB limit without reaching the budget.
        let claimed = MemoryBudget.withLimit(1 << 20) { errorText { try Tensor(npyData: npy("<f8", "(100000, 3, 64, 64)"), path: "c6.npy") } }
        #expect(claimed == "c6.npy: holds 0 data bytes but shape [100000, 3, 64, 64] of float64 needs 9830400000")
        #expect(errorText { try Tensor(npyData: npy("<f4", "(4294967296, 4294967296)"), path: "x.npy") }
            == "x.npy: shape [4294967296, 4294967296] of float32 holds more bytes than can be addressed")
        let overBudget = MemoryBudget.withLimit(1 << 10) { errorText { try Tensor(npyData: npy("<f4", "(1024,)", payload: 4096), path: "b.npy") } }
        #expect(overBudget.hasPrefix("b.npy: a float32 tensor of shape [1024] needs 4.0 KiB"), "\(overBudget)")
        let good = try Tensor(npyData: npy("<f4", "(2, 3)", payload: 24))
        #expect(good.shape == [2, 3])
    }

    /// Files are opened without blocking and refused unless regular.
    @Test func specialFilesAreRefusedBeforeTheyCanBlock() throws {
        let folder = try Fixtures.temporaryDirectory()
        let fifo = folder.appendingPathComponent("pipe").path
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: FileError(path: fifo, reason: "it is a FIFO (named pipe), not a regular file")) { try FileIO.data(of: fifo) }
        #expect(throws: FileError(path: folder.path, reason: "it is a folder, not a regular file")) { try FileIO.data(of: folder.path) }
        #expect(throws: FileError(path: "/dev/null", reason: "it is a character device, not a regular file")) { try FileIO.data(of: "/dev/null") }
        #expect(errorText { try Tensor(npyAt: URL(fileURLWithPath: fifo)) } == "\(fifo): cannot read it: it is a FIFO (named pipe), not a regular file")
        let missing = folder.appendingPathComponent("missing/x.npy")
        #expect(errorText { try Tensor(zeros: .float32, shape: [1]).writeNPY(to: missing) }
            == "\(missing.path): cannot write it (the folder \(folder.path)/missing does not exist)")
    }
}

/// Parts that can fail (scratch over the budget) report it after every part has run.
@Suite struct ParallelFailureTests {
    struct PartFailed: Error, Equatable { let part: Int }

    @Test func theFirstErrorIsRethrownAfterEveryPart() {
        let ran = Counter()
        #expect(throws: PartFailed.self) {
            try Parallel.tryForEach(64, grain: 1) { range in
                ran.add(range.count)
                if range.contains(0) { throw PartFailed(part: 0) }
            }
        }
        #expect(ran.value == 64)
        #expect(throws: Never.self) { try Parallel.tryForEach(10, grain: 1) { _ in } }
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func add(_ n: Int) { lock.withLock { count += n } }
        var value: Int { lock.withLock { count } }
    }
}

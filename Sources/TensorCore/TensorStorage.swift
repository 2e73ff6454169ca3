import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The memory behind a tensor: a contiguous byte buffer that frees itself.
///
/// Storage is either allocated here (64-byte aligned, zero-filled) or adopted from a C allocation
/// such as a decoded protobuf field, so weights are never copied on their way into a tensor.
/// Tensors treat storage as immutable once they hand it out; only the code that creates a
/// tensor writes to it.
@usableFromInline package final class TensorStorage: @unchecked Sendable {
    /// Start of the buffer. Never dangling, even for zero bytes.
    @usableFromInline package let base: UnsafeMutableRawPointer
    /// Size of the buffer in bytes.
    package let byteCount: Int
    /// What is counted against the ``MemoryBudget`` until this storage is freed.
    private let charge: MemoryBudget.Charge
    private let deallocate: @Sendable (UnsafeMutableRawPointer) -> Void

    /// Allocates `byteCount` zeroed bytes.
    package convenience init(byteCount: Int) throws {
        try self.init(uninitializedByteCount: byteCount)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
    }

    /// Allocates `byteCount` zeroed bytes; `what` names the buffer if it does not fit the budget.
    convenience init(byteCount: Int, for what: () -> String) throws {
        try self.init(uninitializedByteCount: byteCount, for: what)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
    }

    /// Allocates `byteCount` bytes without clearing them, for a kernel that writes every byte.
    ///
    /// Large buffers come from, and go back to, ``BufferPool``.
    package convenience init(uninitializedByteCount byteCount: Int) throws {
        try self.init(uninitializedByteCount: byteCount) { "a tensor buffer" }
    }

    /// Allocates `byteCount` bytes without clearing them, counted against the ``MemoryBudget``;
    /// `what` names the buffer in the error when it does not fit or the system refuses it.
    init(uninitializedByteCount byteCount: Int, for what: () -> String) throws {
        let charge = try MemoryBudget.reserve(byteCount, for: what)
        guard let pointer = BufferPool.shared.take(byteCount) else {
            MemoryBudget.release(charge)
            throw TensorError.allocationFailed(what: what(), bytes: byteCount)
        }
        self.base = pointer
        self.byteCount = byteCount
        self.charge = charge
        self.deallocate = { BufferPool.shared.give($0, byteCount: byteCount) }
    }

    /// `byteCount` bytes of `parent` from `byteOffset` on, shared, not copied: tensors never write
    /// storage they did not create, so a contiguous block of one tensor can be another. The
    /// parent stays alive (and counted) as long as this does.
    init(sharing parent: TensorStorage, byteOffset: Int, byteCount: Int) {
        assert(byteOffset >= 0 && byteCount >= 0 && byteOffset + byteCount <= parent.byteCount, "block outside its storage")
        self.base = parent.base + byteOffset
        self.byteCount = byteCount
        self.charge = .none
        self.deallocate = { _ in withExtendedLifetime(parent) {} }
    }

    /// Takes ownership of memory from `UnsafeMutableRawPointer.allocate` (a scalar: not budgeted).
    init(adopting pointer: UnsafeMutableRawPointer, byteCount: Int) {
        self.base = pointer
        self.byteCount = byteCount
        self.charge = .none
        self.deallocate = { $0.deallocate() }
    }

    /// Takes ownership of memory allocated with C `malloc`, counted against the ``MemoryBudget``
    /// from now on; it is released with `free`. Throws (and frees nothing: the caller still owns
    /// `pointer`) when it does not fit.
    package init(adoptingMalloced pointer: UnsafeMutableRawPointer, byteCount: Int) throws {
        self.charge = try MemoryBudget.reserve(byteCount) { "a decoded tensor" }
        self.base = pointer
        self.byteCount = byteCount
        self.deallocate = { free($0) }
    }

    deinit {
        deallocate(base)
        MemoryBudget.release(charge)
    }
}

/// Keeps freed tensor buffers for the next allocation of the same size.
///
/// A forward pass allocates and frees the same activation sizes node after node and run after
/// run; a fresh multi-megabyte buffer costs a page fault (and the kernel's zeroing) every 4 KB, a
/// recycled one nothing. Buffers from 64 KB up are kept by size in pages, up to ``limit`` bytes
/// in all; beyond that they are freed as usual.
package final class BufferPool: @unchecked Sendable {
    /// The pool every ``TensorStorage`` uses.
    package static let shared = BufferPool(limit: 256 << 20)

    /// The most bytes the pool holds while they are not in use.
    package let limit: Int
    private let lock = NSLock()
    private var idle: [Int: [UnsafeMutableRawPointer]] = [:]
    private var held = 0
    private static let smallest = 1 << 16

    package init(limit: Int) { self.limit = limit }

    /// Bytes held for reuse now.
    package var heldBytes: Int { lock.withLock { held } }

    /// A buffer of at least `byteCount` bytes, 64-byte aligned, with whatever it held before, or
    /// `nil` when the system has no memory for it.
    func take(_ byteCount: Int) -> UnsafeMutableRawPointer? {
        let size = BufferPool.size(of: byteCount)
        if size >= BufferPool.smallest {
            let reused: UnsafeMutableRawPointer? = lock.withLock {
                guard let pointer = idle[size]?.popLast() else { return nil }
                held -= size
                return pointer
            }
            if let reused { return reused }
        }
        // posix_memalign reports failure; Swift's allocate would stop the process instead.
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, 64, size) == 0 else { return nil }
        return pointer
    }

    /// Returns a buffer from ``take(_:)`` of the same `byteCount`.
    func give(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        let size = BufferPool.size(of: byteCount)
        let kept = size >= BufferPool.smallest && lock.withLock {
            guard held + size <= limit else { return false }
            idle[size, default: []].append(pointer)
            held += size
            return true
        }
        if !kept { free(pointer) }
    }

    /// Lends `body` an uninitialized buffer of `count` elements of `T` from the shared pool,
    /// counted against the ``MemoryBudget`` while `body` runs.
    package static func withScratch<T, R>(
        _ type: T.Type, count: Int, _ body: (UnsafeMutablePointer<T>) throws -> R
    ) throws -> R {
        guard let bytes = MemoryBudget.product(max(count, 1), MemoryLayout<T>.stride) else {
            throw TensorError.shapeTooLarge(shape: [count, MemoryLayout<T>.stride])
        }
        let storage = try TensorStorage(uninitializedByteCount: bytes) { "a scratch buffer of \(count) elements" }
        return try withExtendedLifetime(storage) { try body(storage.base.bindMemory(to: T.self, capacity: max(count, 1))) }
    }

    /// Frees every buffer the pool holds.
    package func drain() {
        let buffers = lock.withLock {
            defer { idle = [:]; held = 0 }
            return idle.values.flatMap { $0 }
        }
        for pointer in buffers { free(pointer) }
    }

    /// Sizes from 64 KB up are whole pages, so nearby requests share a class.
    private static func size(of byteCount: Int) -> Int {
        let size = max(byteCount, 1)
        return size >= smallest ? (size + 4095) & ~4095 : size
    }
}

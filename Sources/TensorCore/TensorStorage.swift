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
public final class TensorStorage: @unchecked Sendable {
    /// Start of the buffer. Never dangling, even for zero bytes.
    public let base: UnsafeMutableRawPointer
    /// Size of the buffer in bytes.
    public let byteCount: Int
    private let deallocate: @Sendable (UnsafeMutableRawPointer) -> Void

    /// The largest buffer we allocate: the machine's physical memory. Anything larger can only
    /// come from an absurd shape or attribute, and is an error rather than an allocation failure.
    public static let maximumByteCount = Int(clamping: ProcessInfo.processInfo.physicalMemory)

    /// Allocates `byteCount` zeroed bytes.
    public convenience init(byteCount: Int) throws {
        try self.init(uninitializedByteCount: byteCount)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
    }

    /// Allocates `byteCount` bytes without clearing them, for a kernel that writes every byte.
    ///
    /// Large buffers come from, and go back to, ``BufferPool``.
    public init(uninitializedByteCount byteCount: Int) throws {
        guard byteCount <= TensorStorage.maximumByteCount else {
            throw TensorError.allocationTooLarge(bytes: byteCount, limit: TensorStorage.maximumByteCount)
        }
        self.base = BufferPool.shared.take(byteCount)
        self.byteCount = byteCount
        self.deallocate = { BufferPool.shared.give($0, byteCount: byteCount) }
    }

    /// Takes ownership of memory from `UnsafeMutableRawPointer.allocate`.
    init(adopting pointer: UnsafeMutableRawPointer, byteCount: Int) {
        self.base = pointer
        self.byteCount = byteCount
        self.deallocate = { $0.deallocate() }
    }

    /// Takes ownership of memory allocated with C `malloc`; it is released with `free`.
    public init(adoptingMalloced pointer: UnsafeMutableRawPointer, byteCount: Int) {
        self.base = pointer
        self.byteCount = byteCount
        self.deallocate = { free($0) }
    }

    deinit { deallocate(base) }
}

/// Keeps freed tensor buffers for the next allocation of the same size.
///
/// A forward pass allocates and frees the same activation sizes node after node and run after
/// run; a fresh multi-megabyte buffer costs a page fault (and the kernel's zeroing) every 4 KB, a
/// recycled one nothing. Buffers from 64 KB up are kept by size in pages, up to ``limit`` bytes
/// in all; beyond that they are freed as usual.
public final class BufferPool: @unchecked Sendable {
    /// The pool every ``TensorStorage`` uses.
    public static let shared = BufferPool(limit: 256 << 20)

    /// The most bytes the pool holds while they are not in use.
    public let limit: Int
    private let lock = NSLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var held = 0
    private static let smallest = 1 << 16

    public init(limit: Int) { self.limit = limit }

    /// Bytes held for reuse now.
    public var heldBytes: Int { lock.withLock { held } }

    /// A buffer of at least `byteCount` bytes, 64-byte aligned, with whatever it held before.
    func take(_ byteCount: Int) -> UnsafeMutableRawPointer {
        let size = BufferPool.size(of: byteCount)
        if size >= BufferPool.smallest {
            let reused: UnsafeMutableRawPointer? = lock.withLock {
                guard let pointer = free[size]?.popLast() else { return nil }
                held -= size
                return pointer
            }
            if let reused { return reused }
        }
        return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
    }

    /// Returns a buffer from ``take(_:)`` of the same `byteCount`.
    func give(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        let size = BufferPool.size(of: byteCount)
        let kept = size >= BufferPool.smallest && lock.withLock {
            guard held + size <= limit else { return false }
            free[size, default: []].append(pointer)
            held += size
            return true
        }
        if !kept { pointer.deallocate() }
    }

    /// Lends `body` an uninitialized buffer of `count` elements of `T` from the shared pool.
    public static func withScratch<T, R>(
        _ type: T.Type, count: Int, _ body: (UnsafeMutablePointer<T>) throws -> R
    ) rethrows -> R {
        let bytes = max(count, 1) * MemoryLayout<T>.stride
        let raw = shared.take(bytes)
        defer { shared.give(raw, byteCount: bytes) }
        return try body(raw.bindMemory(to: T.self, capacity: max(count, 1)))
    }

    /// Frees every buffer the pool holds.
    public func drain() {
        let buffers = lock.withLock {
            defer { free = [:]; held = 0 }
            return free.values.flatMap { $0 }
        }
        for pointer in buffers { pointer.deallocate() }
    }

    /// Sizes from 64 KB up are whole pages, so nearby requests share a class.
    private static func size(of byteCount: Int) -> Int {
        let size = max(byteCount, 1)
        return size >= smallest ? (size + 4095) & ~4095 : size
    }
}

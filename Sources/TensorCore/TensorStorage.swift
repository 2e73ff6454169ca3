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
    public init(uninitializedByteCount byteCount: Int) throws {
        guard byteCount <= TensorStorage.maximumByteCount else {
            throw TensorError.allocationTooLarge(bytes: byteCount, limit: TensorStorage.maximumByteCount)
        }
        self.base = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        self.byteCount = byteCount
        self.deallocate = { $0.deallocate() }
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

/// An n-dimensional array of one element type, stored contiguously in row-major order.
///
/// Tensors are values: operations return new tensors and never write into their inputs. Copies of
/// a tensor share one block of memory; ``reshaped(_:)`` shares it too.
///
/// ```swift
/// let x = try Tensor(shape: [2, 3], scalars: [Float](repeating: 1, count: 6))
/// let sum = try x.withUnsafeBuffer(as: Float.self) { $0.reduce(0, +) }  // 6
/// ```
public struct Tensor: Sendable {
    /// The element type.
    public let dtype: DType
    /// The extent of each axis; `[]` for a scalar.
    public let shape: [Int]
    /// The number of elements (the product of `shape`).
    public let count: Int
    /// The memory holding the elements; kernels read and write it through ``unsafeElements(as:)``
    /// and its siblings, which check types and bounds in debug builds.
    @usableFromInline package let storage: TensorStorage

    /// The number of axes.
    public var rank: Int { shape.count }
    /// The number of bytes the elements occupy.
    public var byteCount: Int { count * dtype.byteSize }

    /// Wraps existing storage, checking that it is large enough for `shape`.
    package init(dtype: DType, shape: [Int], storage: TensorStorage) throws {
        let count = try Shape.elementCount(shape)
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw TensorError.shapeTooLarge(shape: shape) }
        guard bytes <= storage.byteCount else {
            throw TensorError.countMismatch(shape: shape, expected: count, got: storage.byteCount / dtype.byteSize)
        }
        self.dtype = dtype
        self.shape = shape
        self.count = count
        self.storage = storage
    }

    /// A tensor of zeros (false for `.bool`).
    public init(zeros dtype: DType, shape: [Int]) throws {
        let storage = try TensorStorage(byteCount: Tensor.byteCount(dtype, shape)) { "a \(dtype) tensor of shape \(shape)" }
        try self.init(dtype: dtype, shape: shape, storage: storage)
    }

    /// A tensor whose elements are whatever the memory held: for kernels that write every element.
    package init(uninitialized dtype: DType, shape: [Int]) throws {
        let storage = try TensorStorage(uninitializedByteCount: Tensor.byteCount(dtype, shape)) {
            "a \(dtype) tensor of shape \(shape)"
        }
        try self.init(dtype: dtype, shape: shape, storage: storage)
    }

    private static func byteCount(_ dtype: DType, _ shape: [Int]) throws -> Int {
        let (bytes, overflow) = try Shape.elementCount(shape).multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw TensorError.shapeTooLarge(shape: shape) }
        return bytes
    }

    /// A tensor holding a copy of `scalars`, which must have exactly as many elements as `shape`.
    public init<T: TensorScalar>(shape: [Int], scalars: [T]) throws {
        let count = try Shape.elementCount(shape)
        guard count == scalars.count else {
            throw TensorError.countMismatch(shape: shape, expected: count, got: scalars.count)
        }
        try self.init(uninitialized: T.dtype, shape: shape)
        let destination = unsafeMutableElements(as: T.self)
        scalars.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { destination.address().initialize(from: base, count: count) }
        }
    }

    /// A rank-0 tensor holding one value.
    public init<T: TensorScalar>(scalar: T) {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: T.dtype.byteSize, alignment: 64)
        pointer.bindMemory(to: T.self, capacity: 1).initialize(to: scalar)
        self.dtype = T.dtype
        self.shape = []
        self.count = 1
        self.storage = TensorStorage(adopting: pointer, byteCount: T.dtype.byteSize)
    }

    /// Creates a tensor of `shape` and lets `fill` write its elements (which start at zero, unless
    /// `fill` promises to write every one with `writesAll`).
    package static func build<T: TensorScalar>(
        _ type: T.Type, shape: [Int], writesAll: Bool = false, _ fill: (UnsafeMutableBufferPointer<T>) throws -> Void
    ) throws -> Tensor {
        let tensor = writesAll ? try Tensor(uninitialized: T.dtype, shape: shape) : try Tensor(zeros: T.dtype, shape: shape)
        try fill(tensor.unsafeMutableElements(as: T.self))
        return tensor
    }

    /// Calls `body` with the elements, read as `T`, which must be this tensor's element type.
    public func withUnsafeBuffer<T: TensorScalar, R>(
        as type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R
    ) throws -> R {
        guard T.dtype == dtype else { throw TensorError.dtypeMismatch(expected: T.dtype, got: dtype) }
        return try withExtendedLifetime(storage) { try body(unsafeElements(as: T.self)) }
    }

    /// Calls `body` with the raw bytes of the elements.
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(storage) { try body(UnsafeRawBufferPointer(start: storage.base, count: byteCount)) }
    }

    /// The elements copied into an array of `T`, which must be this tensor's element type.
    public func scalars<T: TensorScalar>(as type: T.Type) throws -> [T] {
        try withUnsafeBuffer(as: T.self) { Array($0) }
    }

    /// The `shape`d block of elements from element `offset` on, sharing this tensor's storage where
    /// that pays, else copied: shared when the block starts on a 64-byte boundary (the kernels'
    /// vector loads stay aligned) and is at least a quarter of the storage (a small block would
    /// keep a large buffer alive for little gain). A Gather or Slice of attention's query, key or
    /// value out of their joint projection is such a block.
    package func contiguousBlock(from offset: Int, shape: [Int]) throws -> Tensor {
        let count = try Shape.elementCount(shape)
        guard offset >= 0, offset <= self.count, count <= self.count - offset else {
            throw TensorError.countMismatch(shape: shape, expected: count, got: max(self.count - offset, 0))
        }
        if offset == 0 && count == self.count { return try reshaped(shape) }
        let (start, bytes) = (offset * dtype.byteSize, count * dtype.byteSize)
        if start % 64 == 0 && bytes >= storage.byteCount / 4 {
            return try Tensor(dtype: dtype, shape: shape, storage: TensorStorage(sharing: storage, byteOffset: start, byteCount: bytes))
        }
        let copy = try Tensor(uninitialized: dtype, shape: shape)
        withExtendedLifetime(self) { copy.storage.base.copyMemory(from: storage.base + start, byteCount: bytes) }
        return copy
    }

    /// The same elements viewed with another shape of equal element count; storage is shared.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        let newCount = try Shape.elementCount(newShape)
        guard newCount == count else { throw TensorError.countMismatch(shape: newShape, expected: newCount, got: count) }
        return try Tensor(dtype: dtype, shape: newShape, storage: storage)
    }
}

extension Tensor: CustomStringConvertible {
    /// `Tensor<float32>[2, 3]`: the element type and shape.
    public var description: String { "Tensor<\(dtype)>\(shape)" }
}

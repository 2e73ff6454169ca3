/// Typed access to a tensor's memory for kernels: checked in debug builds, free in release builds.
///
/// Ops validate what comes from a model (types, shapes) with thrown errors before a kernel runs;
/// these assertions catch a kernel that reads memory as the wrong type or outside a tensor anyway,
/// which would otherwise corrupt memory silently. Subscripts of the returned buffers are
/// bounds-checked in debug builds too (the standard library's own check), and the buffers'
/// `address(at:count:)` checks the sub-views handed to pointer-based kernels (BLAS, im2col). The
/// buffers are valid while the tensor lives: keep it alive (`withExtendedLifetime`) while they are
/// used.
extension Tensor {
    /// The elements read as `T`, which must be this tensor's element type (asserted in debug builds).
    @inlinable @inline(__always) package func unsafeElements<T: TensorScalar>(as type: T.Type) -> UnsafeBufferPointer<T> {
        UnsafeBufferPointer(unsafeMutableElements(as: T.self))
    }

    /// The elements as `T` for writing, which only the code that created this tensor may do
    /// (tensors are values once handed out).
    @inlinable @inline(__always) package func unsafeMutableElements<T: TensorScalar>(as type: T.Type) -> UnsafeMutableBufferPointer<T> {
        assert(elementAccessProblem(as: T.self) == nil, elementAccessProblem(as: T.self) ?? "")
        return UnsafeMutableBufferPointer(start: storage.base.assumingMemoryBound(to: T.self), count: count)
    }

    /// The elements' bit patterns as `E`, a type of the element's size (`UInt8` to `UInt64`), for
    /// kernels that move elements without reading their values, whatever the element type.
    @inlinable @inline(__always) package func unsafeElements<E>(bitsAs type: E.Type) -> UnsafeBufferPointer<E> {
        UnsafeBufferPointer(unsafeMutableElements(bitsAs: E.self))
    }

    /// The elements' bit patterns as `E` for writing; see ``unsafeElements(bitsAs:)``.
    @inlinable @inline(__always) package func unsafeMutableElements<E>(bitsAs type: E.Type) -> UnsafeMutableBufferPointer<E> {
        assert(bitsAccessProblem(as: E.self) == nil, bitsAccessProblem(as: E.self) ?? "")
        return UnsafeMutableBufferPointer(start: storage.base.assumingMemoryBound(to: E.self), count: count)
    }

    /// Why reading this tensor's elements as `T` would be wrong, or `nil` when it is right.
    @usableFromInline package func elementAccessProblem<T: TensorScalar>(as type: T.Type) -> String? {
        T.dtype == dtype ? bitsAccessProblem(as: T.self) : "\(self) read as \(T.self), which stores \(T.dtype)"
    }

    /// Why reading this tensor's elements as bit patterns of `E` would be wrong, or `nil` when it is right.
    @usableFromInline package func bitsAccessProblem<E>(as type: E.Type) -> String? {
        let size = MemoryLayout<E>.stride
        if size != dtype.byteSize { return "\(self) read as \(E.self), of \(size) bytes, but its elements take \(dtype.byteSize)" }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
        if overflow || bytes > storage.byteCount { return "\(self) needs \(count) × \(size) bytes, its storage has \(storage.byteCount)" }
        return nil
    }
}

extension UnsafeBufferPointer {
    /// The address of element `offset`, from which a kernel reads `count` elements (by default the
    /// rest of the buffer); debug builds assert that they lie inside the buffer.
    @inlinable @inline(__always) package func address(at offset: Int = 0, count: Int? = nil) -> UnsafePointer<Element> {
        assert(subviewProblem(offset, count, within: self.count) == nil, subviewProblem(offset, count, within: self.count) ?? "")
        return baseAddress.unsafelyUnwrapped + offset
    }
}

extension UnsafeMutableBufferPointer {
    /// The address of element `offset`, from which a kernel reads or writes `count` elements (by
    /// default the rest of the buffer); debug builds assert that they lie inside the buffer.
    @inlinable @inline(__always) package func address(at offset: Int = 0, count: Int? = nil) -> UnsafeMutablePointer<Element> {
        assert(subviewProblem(offset, count, within: self.count) == nil, subviewProblem(offset, count, within: self.count) ?? "")
        return baseAddress.unsafelyUnwrapped + offset
    }
}

/// Why `count` elements from `offset` (or all the rest, when `count` is `nil`) do not fit in a
/// buffer of `total` elements, or `nil` when they do.
@usableFromInline package func subviewProblem(_ offset: Int, _ count: Int?, within total: Int) -> String? {
    let count = count ?? total - offset
    guard offset >= 0, count >= 0, offset <= total, count <= total - offset else {
        return "\(count) elements from element \(offset) lie outside a buffer of \(total)"
    }
    return nil
}

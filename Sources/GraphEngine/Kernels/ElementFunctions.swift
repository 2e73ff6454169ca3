import Foundation
import TensorCore

// Element-wise loops whose function is a type parameter rather than a closure: each use with a
// concrete function type specializes the loop into straight-line code the compiler can
// vectorize, with no call per element (a closure or a generic `T` reached through an existential
// leaves one witness or closure call per element).

/// A function of one tensor element.
protocol UnaryElementFunction {
    associatedtype Input: TensorScalar
    associatedtype Output: TensorScalar
    func callAsFunction(_ x: Input) -> Output
}

/// A function of two tensor elements.
protocol BinaryElementFunction {
    associatedtype Input: TensorScalar
    associatedtype Output: TensorScalar
    func callAsFunction(_ a: Input, _ b: Input) -> Output
}

/// `f` of every element of `x`, split over the kernel threads.
func elementwise<F: UnaryElementFunction>(_ x: Tensor, _ f: F) throws -> Tensor {
    try x.withUnsafeBuffer(as: F.Input.self) { input in
        try Tensor.build(F.Output.self, shape: x.shape, writesAll: true) { out in
            Parallel.forEach(input.count) { range in
                for i in range { out[i] = f(input[i]) }
            }
        }
    }
}

/// `f` of `a` and `b` broadcast together (NumPy rules); long rows split over the kernel threads.
func elementwise<F: BinaryElementFunction>(_ a: Tensor, _ b: Tensor, _ f: F) throws -> Tensor {
    let loop = try BroadcastLoop([a.shape, b.shape])
    let strides = loop.innerStrides
    let (sa, sb, length) = (strides[0], strides[1], loop.length)
    return try a.withUnsafeBuffer(as: F.Input.self) { xs in
        try b.withUnsafeBuffer(as: F.Input.self) { ys in
            try Tensor.build(F.Output.self, shape: loop.shape, writesAll: true) { outs in
                guard let x = xs.baseAddress, let y = ys.baseAddress, let out = outs.baseAddress else { return }
                loop.forEachRow { offsets, o in
                    // Row pointers, so the loops index with `i` alone: overflow-checked `o + i`
                    // sums kept them from vectorizing (5x slower for PRelu and Max).
                    let (a, b, c) = (x + offsets[0], y + offsets[1], out + o)
                    Parallel.forEach(length) { range in
                        switch (sa, sb) {
                        case (1, 1): for i in range { c[i] = f(a[i], b[i]) }
                        case (1, 0):
                            let scalar = b[0]
                            for i in range { c[i] = f(a[i], scalar) }
                        case (0, 1):
                            let scalar = a[0]
                            for i in range { c[i] = f(scalar, b[i]) }
                        default: for i in range { c[i] = f(a[i &* sa], b[i &* sb]) }
                        }
                    }
                }
            }
        }
    }
}

/// Floating-point types with the elementary functions beyond ``FloatKernelScalar``'s that the
/// activations and math ops need.
protocol ElementaryScalar: FloatKernelScalar {
    static func expm1(_ x: Self) -> Self
    static func log1p(_ x: Self) -> Self
    static func sin(_ x: Self) -> Self
    static func cos(_ x: Self) -> Self
}

extension Float: ElementaryScalar {
    static func expm1(_ x: Float) -> Float { Foundation.expm1(x) }
    static func log1p(_ x: Float) -> Float { Foundation.log1p(x) }
    static func sin(_ x: Float) -> Float { Foundation.sin(x) }
    static func cos(_ x: Float) -> Float { Foundation.cos(x) }
}

extension Double: ElementaryScalar {
    static func expm1(_ x: Double) -> Double { Foundation.expm1(x) }
    static func log1p(_ x: Double) -> Double { Foundation.log1p(x) }
    static func sin(_ x: Double) -> Double { Foundation.sin(x) }
    static func cos(_ x: Double) -> Double { Foundation.cos(x) }
}

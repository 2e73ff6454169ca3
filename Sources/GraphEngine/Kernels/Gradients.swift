import TensorCore

extension Tensor {
    /// This tensor summed down to `shape`, the inverse of broadcasting `shape` up to this tensor's shape.
    func summed(toShape shape: [Int]) throws -> Tensor {
        if self.shape == shape { return self }
        if dtype == .float16 { return try converted(to: .float32).summed(toShape: shape).converted(to: .float16) }
        guard (try? Shape.broadcast(shape, self.shape)) == self.shape else {
            throw OpError("a gradient of shape \(self.shape) cannot be summed to shape \(shape)")
        }
        // Right-align the target, then sum over the axes where it has extent 1.
        let kept = Array(repeating: 1, count: rank - shape.count) + shape
        let loop = try BroadcastLoop([self.shape, kept])
        let strides = loop.innerStrides
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor {
            try withUnsafeBuffer(as: T.self) { input in
                try Tensor.build(T.self, shape: shape) { out in
                    loop.forEachRow { offsets, _ in
                        for i in 0..<loop.length {
                            let o = offsets[1] + i * strides[1]
                            out[o] = T.add(out[o], input[offsets[0] + i * strides[0]])
                        }
                    }
                }
            }
        }
        return try withArithmeticType(dtype, "gradient") { try run($0) }
    }

    /// The element-wise sum of two tensors of one shape and type: how gradients accumulate.
    func adding(_ other: Tensor) throws -> Tensor {
        if dtype == .float16 {
            return try converted(to: .float32).adding(other.converted(to: .float32)).converted(to: .float16)
        }
        // float32 through Add's specialized kernel (the generic loop below is a witness call per element).
        if dtype == .float32, other.dtype == .float32,
            let sum = try BinaryArithmetic(name: "gradient", kind: .add).forward(OpInputs([self, other]))[0]
        {
            return sum
        }
        func run<T: ArithmeticScalar>(_ type: T.Type) throws -> Tensor { try broadcastBinary(self, other, as: T.self, T.add) }
        return try withArithmeticType(dtype, "gradient") { try run($0) }
    }
}

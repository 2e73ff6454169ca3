import Testing
@testable import TensorCore

/// The typed accessors kernels read tensors through: what their debug assertions check, and (in
/// debug builds, where the assertions exist) that a violation stops the process.
@Suite struct UnsafeElementsTests {
    @Test func everyElementTypeReadsAsItsOwnSwiftTypeOnly() throws {
        func tensor<T: TensorScalar>(_ value: T) throws -> Tensor { try Tensor(shape: [2], scalars: [value, value]) }
        let tensors = [
            try tensor(Float(1)), try tensor(Half(bits: 0x3C00)), try tensor(Double(1)), try tensor(Int64(1)),
            try tensor(Int32(1)), try tensor(Int8(1)), try tensor(UInt8(1)), try tensor(true),
        ]
        #expect(tensors.map(\.dtype) == DType.allCases)
        let types: [any TensorScalar.Type] = [Float.self, Half.self, Double.self, Int64.self, Int32.self, Int8.self, UInt8.self, Bool.self]
        func problem<T: TensorScalar>(_ x: Tensor, _ type: T.Type) -> String? { x.elementAccessProblem(as: T.self) }
        for (i, x) in tensors.enumerated() {
            for (j, type) in types.enumerated() {
                let found = problem(x, type)
                #expect((found == nil) == (i == j), "\(x) as \(type): \(found ?? "accepted")")
            }
        }
        #expect(problem(tensors[0], Int32.self) == "Tensor<float32>[2] read as Int32, which stores int32")
        #expect(try tensors[0].unsafeElements(as: Float.self).elementsEqual(tensors[0].scalars(as: Float.self)))
    }

    @Test func bitPatternsNeedTheElementSize() throws {
        let x = try Tensor(shape: [3], scalars: [Float(1), 2, 3])
        #expect(x.bitsAccessProblem(as: UInt32.self) == nil)
        #expect(x.bitsAccessProblem(as: UInt64.self) == "Tensor<float32>[3] read as UInt64, of 8 bytes, but its elements take 4")
        #expect(x.bitsAccessProblem(as: UInt16.self) != nil)
        #expect(Array(x.unsafeElements(bitsAs: UInt32.self)) == [Float(1), 2, 3].map(\.bitPattern))
    }

    @Test func subviewsMustLieInsideTheBuffer() {
        #expect(subviewProblem(0, nil, within: 6) == nil)
        #expect(subviewProblem(2, 4, within: 6) == nil)
        #expect(subviewProblem(6, 0, within: 6) == nil)  // an empty view at the end
        #expect(subviewProblem(6, nil, within: 6) == nil)
        #expect(subviewProblem(3, 4, within: 6) == "4 elements from element 3 lie outside a buffer of 6")
        #expect(subviewProblem(-1, 1, within: 6) != nil)
        #expect(subviewProblem(7, nil, within: 6) != nil)
        #expect(subviewProblem(2, -1, within: 6) != nil)
        #expect(subviewProblem(1, Int.max, within: 6) != nil)  // no overflow in the check
    }

    @Test func addressesPointIntoTheTensor() throws {
        let x = try Tensor(shape: [2, 3], scalars: [Float(0), 1, 2, 3, 4, 5])
        try withExtendedLifetime(x) {
            let elements = x.unsafeElements(as: Float.self)
            #expect(elements.count == 6)
            #expect(elements.address(at: 3, count: 3).pointee == 3)
            #expect(elements.address() == elements.baseAddress)
            let built = try Tensor.build(Float.self, shape: [2]) { $0.address(at: 1, count: 1).pointee = 7 }
            #expect(try built.scalars(as: Float.self) == [0, 7])
        }
    }

    #if DEBUG  // release builds compile the assertions out: that is their point
    @Test func readingTheWrongTypeStopsADebugBuild() async {
        await #expect(processExitsWith: .failure) {
            let x = try Tensor(shape: [2], scalars: [Int64(1), 2])
            _ = withExtendedLifetime(x) { x.unsafeElements(as: Double.self)[0] }
        }
        await #expect(processExitsWith: .failure) {
            let x = try Tensor(shape: [2], scalars: [Float(1), 2])
            _ = withExtendedLifetime(x) { x.unsafeMutableElements(bitsAs: UInt16.self) }
        }
    }

    @Test func aSubviewOrIndexOutsideTheTensorStopsADebugBuild() async {
        await #expect(processExitsWith: .failure) {
            let x = try Tensor(shape: [2, 3], scalars: [Float](repeating: 0, count: 6))
            _ = withExtendedLifetime(x) { x.unsafeElements(as: Float.self).address(at: 3, count: 4) }
        }
        await #expect(processExitsWith: .failure) {
            let x = try Tensor(shape: [2, 3], scalars: [Float](repeating: 0, count: 6))
            withExtendedLifetime(x) { x.unsafeMutableElements(as: Float.self)[6] = 1 }
        }
    }
    #endif
}

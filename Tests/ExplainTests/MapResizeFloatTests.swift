import Explain
import TestSupport
import Testing

/// The float32 resize the CAM maps go through against the double-precision one.
@Suite struct MapResizeFloatTests {
    @Test(arguments: MapResize.allCases)
    func float32MapsMatchTheDoublePrecisionResize(_ resize: MapResize) throws {
        // Two 7 × 5 maps of values in [0, 1], to 16 × 11 (up) and 3 × 2 (down).
        var random = SeededRandom(seed: 80)
        let maps = (0..<2).map { _ in (0..<35).map { _ in random.uniform(0...1) } }
        let floats = maps.flatMap { $0.map { Float($0) } }
        for (outHeight, outWidth) in [(16, 11), (3, 2)] {
            var out = [Float](repeating: .nan, count: 2 * outHeight * outWidth)
            try floats.withUnsafeBufferPointer { input in
                try out.withUnsafeMutableBufferPointer { output in
                    try resize.apply(
                        input.baseAddress!, count: 2, height: 7, width: 5, outHeight: outHeight, outWidth: outWidth,
                        into: output.baseAddress!)
                }
            }
            for (index, map) in maps.enumerated() {
                // The same map rounded to float32 first, so only the resize's own arithmetic differs.
                let exact = resize.apply(map.map { Double(Float($0)) }, height: 7, width: 5, outHeight: outHeight, outWidth: outWidth)
                let ours = out[index * outHeight * outWidth..<(index + 1) * outHeight * outWidth]
                // Two weighted sums of two terms each, with weights rounded to float32: a few
                // roundings of 2⁻²⁴ relative to values at most 1; 1e-6 leaves ample room, a wrong
                // tap or weight is off by a large fraction of the values.
                #expect(zip(ours, exact).allSatisfy { abs(Double($0) - $1) <= 1e-6 }, "\(outHeight)×\(outWidth)")
            }
        }
    }
}

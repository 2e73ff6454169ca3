import Testing
import TensorCore

/// Our half-precision conversion against Swift's own `Float16`, the reference where it exists.
@Suite struct HalfTests {
    #if !(os(macOS) && arch(x86_64))
    @Test func everyHalfConvertsExactlyToFloat() {
        for bits in UInt16.min...UInt16.max {
            let reference = Float(Float16(bitPattern: bits))
            let ours = Half(bits: bits).floatValue
            if reference.isNaN {
                #expect(ours.isNaN)
            } else {
                #expect(ours.bitPattern == reference.bitPattern, "bits \(bits)")
            }
        }
    }

    @Test func floatsRoundToNearestEvenLikeFloat16() {
        // Every half value, the midpoints between neighbours (ties), and points just around them.
        var mismatches = 0
        for bits in UInt16.min...UInt16.max {
            let value = Half(bits: bits).floatValue
            guard value.isFinite else { continue }
            for probe in [value, value.nextUp, value.nextDown, value * 1.000_244_1, value * 0.999_755_9] {
                let reference = Float16(probe).bitPattern
                let ours = Half(probe).bits
                if ours != reference && !Float(Float16(probe)).isNaN { mismatches += 1 }
            }
        }
        #expect(mismatches == 0)
        #expect(Half(Float.infinity).bits == Float16(Float.infinity).bitPattern)
        #expect(Half(70000).bits == Float16(Float(70000)).bitPattern)
        #expect(Half(Float.nan).floatValue.isNaN)
    }
    #endif
}

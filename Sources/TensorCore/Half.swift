/// IEEE 754 binary16 <-> binary32 conversion, round-to-nearest-even, for `.float16` tensors.
extension Half {
    /// The half-precision value nearest to `value`.
    public init(_ value: Float) {
        let f = value.bitPattern
        let sign = UInt16((f >> 16) & 0x8000)
        let exponent = Int((f >> 23) & 0xFF)
        var mantissa = f & 0x7F_FFFF
        if exponent == 0xFF {  // infinity or NaN; keep NaNs quiet
            bits = sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0)
            return
        }
        let halfExponent = exponent - 127 + 15
        if halfExponent >= 0x1F {
            bits = sign | 0x7C00
            return
        }
        if halfExponent <= 0 {  // subnormal half or zero
            if halfExponent < -10 {
                bits = sign
                return
            }
            mantissa |= 0x80_0000
            let shift = UInt32(14 - halfExponent)
            var half = mantissa >> shift
            let remainder = mantissa & ((1 << shift) - 1)
            let halfway = UInt32(1) << (shift - 1)
            if remainder > halfway || (remainder == halfway && (half & 1) == 1) { half += 1 }
            bits = sign | UInt16(half)
            return
        }
        var half = UInt32(halfExponent) << 10 | (mantissa >> 13)
        let remainder = mantissa & 0x1FFF
        if remainder > 0x1000 || (remainder == 0x1000 && (half & 1) == 1) { half += 1 }  // may carry into infinity
        bits = sign | UInt16(half)
    }

    /// The exact single-precision value of this half.
    public var floatValue: Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x3FF)
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        if exponent == 0 {
            if mantissa == 0 { return Float(bitPattern: sign) }
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -magnitude : magnitude
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

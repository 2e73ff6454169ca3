/// Colormaps from a value in [0, 1] to 8-bit RGB, through a 256-level lookup as OpenCV and
/// matplotlib apply them.
public enum Colormap: String, Sendable, CaseIterable {
    /// OpenCV's `COLORMAP_JET`, what pytorch-grad-cam overlays use.
    case jet
    /// Google's Turbo.
    case turbo
    /// matplotlib's viridis.
    case viridis
    /// matplotlib's inferno.
    case inferno
    /// Black to white.
    case gray
    /// Diverging red (low) - white - blue (high): matplotlib's `RdBu`, for divergence maps.
    case redBlue = "rdbu"

    /// The colour of `level` (0...255).
    package func color(_ level: UInt8) -> (UInt8, UInt8, UInt8) {
        let i = Int(level)
        switch self {
        case .jet:
            // OpenCV's jet, channel by channel: ramps of 4 levels per step between its breakpoints.
            // OpenCV interpolates in float and rounds; at level 159 its blue lands at 1, not 2.
            func ramp(_ rising: Int, _ falling: Int) -> UInt8 { UInt8(clamping: min(4 * i + rising, falling - 4 * i)) }
            return (ramp(-382, 1148), ramp(-128, 892), i == 159 ? 1 : ramp(128, 638))
        case .gray:
            return (level, level, level)
        case .turbo: return Colormap.lookup(ColormapTables.turbo, i)
        case .viridis: return Colormap.lookup(ColormapTables.viridis, i)
        case .inferno: return Colormap.lookup(ColormapTables.inferno, i)
        case .redBlue: return Colormap.lookup(ColormapTables.redBlue, i)
        }
    }

    /// The 8-bit level of a value in [0, 1]: `uint8(255 · v)`, truncating as NumPy does, clamped.
    package static func level(_ value: Float) -> UInt8 {
        let scaled = 255 * value
        return scaled.isNaN ? 0 : UInt8(clamping: Int(max(min(scaled, 255), 0)))
    }

    /// Colours a map of values in [0, 1] into interleaved RGB.
    package func apply<Values: Collection>(_ values: Values) -> [UInt8] where Values.Element == Float {
        var rgb = [UInt8](repeating: 0, count: values.count * 3)
        for (p, value) in values.enumerated() {
            let (r, g, b) = color(Colormap.level(value))
            rgb[p * 3] = r
            rgb[p * 3 + 1] = g
            rgb[p * 3 + 2] = b
        }
        return rgb
    }

    private static func lookup(_ table: [UInt8], _ i: Int) -> (UInt8, UInt8, UInt8) {
        (table[i * 3], table[i * 3 + 1], table[i * 3 + 2])
    }
}

import TensorCore

/// Resizing of single-channel maps: how CAMs reach the input's resolution.
public enum MapResize: String, Sendable, CaseIterable {
    /// Bilinear with half-pixel centres, clamped at the edges: OpenCV's `INTER_LINEAR`, which
    /// pytorch-grad-cam uses.
    case bilinear
    /// Bilinear with the corner pixels aligned (`align_corners=True`): PyTorch's
    /// `UpsamplingBilinear2d`, which ScoreCAM uses for its masks.
    case bilinearAlignCorners
    /// Nearest neighbour, `floor(dst * in / out)`: PyTorch's default `interpolate`, which Captum uses.
    case nearest

    /// Resizes a row-major `height` x `width` map to `outHeight` x `outWidth`.
    package func apply(_ map: [Double], height: Int, width: Int, outHeight: Int, outWidth: Int) -> [Double] {
        let rows = axisTaps(input: height, output: outHeight)
        let columns = axisTaps(input: width, output: outWidth)
        var result = [Double](repeating: 0, count: outHeight * outWidth)
        for (y, row) in rows.enumerated() {
            for (x, column) in columns.enumerated() {
                let top = map[row.0 * width + column.0] * (1 - column.2) + map[row.0 * width + column.1] * column.2
                let bottom = map[row.1 * width + column.0] * (1 - column.2) + map[row.1 * width + column.1] * column.2
                result[y * outWidth + x] = top * (1 - row.2) + bottom * row.2
            }
        }
        return result
    }

    /// The double-precision resize on `count` float32 maps one after another,
    /// in float32: each input row is first resized along its width, then each output row blends
    /// two of those rows (the order OpenCV's `resize` follows, and the same products and sums as
    /// the double-precision version, rounded to float32). Throws when the memory budget refuses
    /// the scratch of one map's rows.
    package func apply(
        _ maps: UnsafePointer<Float>, count: Int, height: Int, width: Int, outHeight: Int, outWidth: Int,
        into out: UnsafeMutablePointer<Float>
    ) throws {
        let rows = axisTaps(input: height, output: outHeight).map { ($0.0, $0.1, Float(1 - $0.2), Float($0.2)) }
        let columns = axisTaps(input: width, output: outWidth).map { ($0.0, $0.1, Float(1 - $0.2), Float($0.2)) }
        let size = outHeight * outWidth
        // Per map: `height` rows of `outWidth` values, resized along their width.
        try BufferPool.withScratch(Float.self, count: height * outWidth) { wide in
            for map in 0..<count {
                let source = maps + map * height * width
                for r in 0..<height {
                    let row = source + r * width
                    let target = wide + r * outWidth
                    for (x, column) in columns.enumerated() { target[x] = row[column.0] * column.2 + row[column.1] * column.3 }
                }
                let destination = out + map * size
                for (y, row) in rows.enumerated() {
                    let (top, bottom, target) = (wide + row.0 * outWidth, wide + row.1 * outWidth, destination + y * outWidth)
                    for x in 0..<outWidth { target[x] = top[x] * row.2 + bottom[x] * row.3 }
                }
            }
        }
    }

    /// For each output index along one axis: the two input indices and the weight of the second.
    private func axisTaps(input: Int, output: Int) -> [(Int, Int, Double)] {
        (0..<output).map { index in
            switch self {
            case .nearest:
                let source = min(index * input / max(output, 1), input - 1)
                return (source, source, 0)
            case .bilinear:
                let position = (Double(index) + 0.5) * Double(input) / Double(output) - 0.5
                var lower = Int(position.rounded(.down))
                var fraction = position - Double(lower)
                if lower < 0 {
                    lower = 0
                    fraction = 0
                }
                if lower >= input - 1 {
                    lower = input - 1
                    fraction = 0
                }
                return (lower, min(lower + 1, input - 1), fraction)
            case .bilinearAlignCorners:
                let position = output > 1 ? Double(index) * Double(input - 1) / Double(output - 1) : 0
                let lower = min(Int(position.rounded(.down)), input - 1)
                return (lower, min(lower + 1, input - 1), position - Double(lower))
            }
        }
    }
}

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

/// Bilinear resizing of 8-bit images exactly as PIL's `Image.resize(size, BILINEAR)` does it,
/// which is what torchvision's `Resize` runs on PIL images.
///
/// PIL resamples with a triangle filter widened by the scale factor when shrinking (so it
/// antialiases), computes each output as a fixed-point weighted sum (22 fractional bits) and
/// rounds to 8 bits after the horizontal pass and again after the vertical one.
enum Resample {
    private static let precisionBits = 22

    /// Per output index: the first input index, the number of taps, and fixed-point weights.
    struct Coefficients {
        let first: [Int]
        let count: [Int]
        let weights: [[Int]]
    }

    static func coefficients(input: Int, output: Int) -> Coefficients {
        let scale = Double(input) / Double(output)
        let filterScale = max(scale, 1)
        let support = filterScale  // the bilinear filter's support is 1
        var first: [Int] = []
        var count: [Int] = []
        var weights: [[Int]] = []
        for index in 0..<output {
            let center = (Double(index) + 0.5) * scale
            let low = max(Int(center - support + 0.5), 0)
            let high = min(Int(center + support + 0.5), input)
            var taps: [Double] = []
            for x in low..<max(high, low) {
                let distance = abs((Double(x) - center + 0.5) / filterScale)
                taps.append(distance < 1 ? 1 - distance : 0)
            }
            let total = taps.reduce(0, +)
            let normalized = taps.map { total != 0 ? $0 / total : $0 }
            first.append(low)
            count.append(taps.count)
            weights.append(normalized.map { value in
                let scaled = value * Double(1 << precisionBits)
                return Int(value < 0 ? scaled - 0.5 : scaled + 0.5)
            })
        }
        return Coefficients(first: first, count: count, weights: weights)
    }

    private static func clip8(_ sum: Int) -> UInt8 {
        let value = sum >> precisionBits
        return UInt8(clamping: value)
    }

    /// Resizes `image` to `width` x `height`; horizontal pass first, as PIL does.
    static func bilinear(_ image: RGBImage, width: Int, height: Int) throws -> RGBImage {
        if width == image.width && height == image.height { return image }
        let horizontal = coefficients(input: image.width, output: width)
        let vertical = coefficients(input: image.height, output: height)
        // PIL only runs the horizontal pass over the rows the vertical pass reads.
        let firstRow = vertical.first.first ?? 0
        let lastRow = (vertical.first.last ?? 0) + (vertical.count.last ?? 0)
        let rows = width != image.width ? lastRow - firstRow : image.height
        let rowOffset = width != image.width ? firstRow : 0
        var temp = [UInt8](repeating: 0, count: max(rows, 0) * width * 3)
        let half = 1 << (precisionBits - 1)
        if width != image.width {
            for y in 0..<rows {
                let source = (y + rowOffset) * image.width * 3
                for x in 0..<width {
                    var sums = (half, half, half)
                    let start = horizontal.first[x]
                    for (k, weight) in horizontal.weights[x].enumerated() {
                        let pixel = source + (start + k) * 3
                        sums.0 += Int(image.pixels[pixel]) * weight
                        sums.1 += Int(image.pixels[pixel + 1]) * weight
                        sums.2 += Int(image.pixels[pixel + 2]) * weight
                    }
                    temp[(y * width + x) * 3] = clip8(sums.0)
                    temp[(y * width + x) * 3 + 1] = clip8(sums.1)
                    temp[(y * width + x) * 3 + 2] = clip8(sums.2)
                }
            }
        } else {
            temp = image.pixels
        }
        guard height != image.height else { return try RGBImage(width: width, height: height, pixels: temp) }
        var output = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let start = vertical.first[y] - rowOffset
            for x in 0..<width {
                var sums = (half, half, half)
                for (k, weight) in vertical.weights[y].enumerated() {
                    let pixel = ((start + k) * width + x) * 3
                    sums.0 += Int(temp[pixel]) * weight
                    sums.1 += Int(temp[pixel + 1]) * weight
                    sums.2 += Int(temp[pixel + 2]) * weight
                }
                output[(y * width + x) * 3] = clip8(sums.0)
                output[(y * width + x) * 3 + 1] = clip8(sums.1)
                output[(y * width + x) * 3 + 2] = clip8(sums.2)
            }
        }
        return try RGBImage(width: width, height: height, pixels: output)
    }

    /// Nearest-neighbour resizing (PIL's `NEAREST`): output pixel `i` reads input `floor((i + 0.5) · in / out)`.
    static func nearest(_ image: RGBImage, width: Int, height: Int) throws -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let sy = min(Int((Double(y) + 0.5) * Double(image.height) / Double(height)), image.height - 1)
            for x in 0..<width {
                let sx = min(Int((Double(x) + 0.5) * Double(image.width) / Double(width)), image.width - 1)
                for c in 0..<3 { pixels[(y * width + x) * 3 + c] = image.pixels[(sy * image.width + sx) * 3 + c] }
            }
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }
}

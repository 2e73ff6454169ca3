/// A white RGB drawing surface for figures: filled rectangles, scaled images and bitmap text.
struct Canvas {
    let width: Int
    let height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ color: (UInt8, UInt8, UInt8)) {
        guard x >= 0, x < width, y >= 0, y < height else { return }
        let i = (y * width + x) * 3
        (pixels[i], pixels[i + 1], pixels[i + 2]) = color
    }

    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, _ color: (UInt8, UInt8, UInt8)) {
        for row in y..<y + h { for column in x..<x + w { set(column, row, color) } }
    }

    /// Draws `image` at (x, y), each pixel as a `scale` x `scale` block.
    mutating func draw(_ image: RGBImage, x: Int, y: Int, scale: Int) {
        for row in 0..<image.height * scale {
            for column in 0..<image.width * scale {
                let i = ((row / scale) * image.width + column / scale) * 3
                set(x + column, y + row, (image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]))
            }
        }
    }

    /// Writes `text` with its top-left corner at (x, y), glyphs `scale` times their size.
    mutating func text(_ text: String, x: Int, y: Int, scale: Int, color: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
        var cursor = x
        for character in text {
            for (row, bits) in BitmapFont.rows(character).enumerated() {
                for column in 0..<BitmapFont.width where bits & (0x10 >> UInt8(column)) != 0 {
                    fill(x: cursor + column * scale, y: y + row * scale, width: scale, height: scale, color)
                }
            }
            cursor += (BitmapFont.width + 1) * scale
        }
    }

    static func textWidth(_ text: String, scale: Int) -> Int { max(text.count * (BitmapFont.width + 1) * scale - scale, 0) }

    func image() throws -> RGBImage { try RGBImage(width: width, height: height, pixels: pixels) }
}

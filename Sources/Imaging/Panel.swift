import TensorCore

/// Figures: the seed's side-by-side comparison (original | heatmap | overlay) with titles and a colorbar.
public enum Panel {
    /// A colorbar drawn right of panel `after`, labelled at its ends.
    public struct Colorbar: Sendable {
        /// The panel the colorbar follows, by index.
        public var after: Int
        /// The colormap it shows.
        public var colormap: Colormap
        /// The label at its low end.
        public var low: String
        /// The label at its high end.
        public var high: String

        /// A colorbar after panel `after`.
        public init(after: Int, colormap: Colormap, low: String, high: String) {
            self.after = after
            self.colormap = colormap
            self.low = low
            self.high = high
        }
    }

    /// Images and their titles side by side, with colorbars after chosen panels.
    ///
    /// Small images are enlarged by an integer factor (nearest neighbour) so the smaller side
    /// reaches at least 160 pixels; titles use the built-in bitmap font.
    public static func figure(_ panels: [(title: String, image: RGBImage)], colorbars: [Colorbar] = []) throws -> RGBImage {
        guard let first = panels.first else { throw ImageError.invalid("a figure needs at least one panel") }
        let scale = max(1, min((160 + min(first.image.width, first.image.height) - 1) / min(first.image.width, first.image.height), 8))
        let margin = 12
        let fontScale = 2
        let titleHeight = BitmapFont.height * fontScale + 10
        let barWidth = 16
        let barLabel = (colorbars.flatMap { [$0.low, $0.high] }.map { Canvas.textWidth($0, scale: fontScale) }.max() ?? 0) + 6
        let panelWidths = panels.map { max($0.image.width * scale, Canvas.textWidth($0.title, scale: fontScale)) }
        var width = margin + panelWidths.reduce(0) { $0 + $1 + margin }
        width += colorbars.count * (barWidth + barLabel + margin)
        let imageHeight = panels.map { $0.image.height * scale }.max() ?? 0
        let height = margin + titleHeight + imageHeight + margin
        var canvas = Canvas(width: width, height: height)
        var x = margin
        for (index, panel) in panels.enumerated() {
            let titleX = x + (panelWidths[index] - Canvas.textWidth(panel.title, scale: fontScale)) / 2
            canvas.text(panel.title, x: titleX, y: margin, scale: fontScale)
            canvas.draw(panel.image, x: x + (panelWidths[index] - panel.image.width * scale) / 2, y: margin + titleHeight, scale: scale)
            x += panelWidths[index] + margin
            for colorbar in colorbars where colorbar.after == index {
                // Top is the high end, as matplotlib draws it.
                let top = margin + titleHeight
                for row in 0..<imageHeight {
                    let value = Float(imageHeight - 1 - row) / Float(max(imageHeight - 1, 1))
                    canvas.fill(x: x, y: top + row, width: barWidth, height: 1, colorbar.colormap.color(Colormap.level(value)))
                }
                canvas.text(colorbar.high, x: x + barWidth + 4, y: top, scale: fontScale)
                canvas.text(colorbar.low, x: x + barWidth + 4, y: top + imageHeight - BitmapFont.height * fontScale, scale: fontScale)
                x += barWidth + barLabel + margin
            }
        }
        return try canvas.image()
    }

    /// The seed's three panels for one image: the original, the coloured heatmap with a colorbar,
    /// and the overlay.
    public static func comparison(image: RGBImage, heatmap: Tensor, alpha: Float = 0.5, colormap: Colormap = .jet) throws -> RGBImage {
        let values = try heatmap.converted(to: .float32).scalars(as: Float.self)
        let colored = try RGBImage(width: image.width, height: image.height, pixels: colormap.apply(values))
        let overlay = try Overlay.overlay(image: image, heatmap: heatmap, alpha: alpha, colormap: colormap)
        return try figure(
            [("Original", image), ("GradCAM Heatmap", colored), ("Overlay", overlay)],
            colorbars: [Colorbar(after: 1, colormap: colormap, low: "0", high: "1")])
    }
}

extension Panel {
    /// Images of one height side by side on white, `gap` pixels apart, at their own resolution.
    public static func sideBySide(_ images: [RGBImage], gap: Int = 2) throws -> RGBImage {
        guard let height = images.map(\.height).max(), !images.isEmpty else { throw ImageError.invalid("nothing to put side by side") }
        var canvas = Canvas(width: images.reduce(0) { $0 + $1.width } + gap * (images.count - 1), height: height)
        var x = 0
        for image in images {
            canvas.draw(image, x: x, y: 0, scale: 1)
            x += image.width + gap
        }
        return try canvas.image()
    }
}

extension RGBImage {
    /// The image with the flagged pixels (`width * height`, row-major) painted in `color`: a
    /// region's outline over a heatmap or an overlay.
    public func outlined(_ flags: [Bool], color: (UInt8, UInt8, UInt8) = (255, 255, 255)) throws -> RGBImage {
        guard flags.count == width * height else {
            throw ImageError.invalid("an outline of \(flags.count) pixels does not fit a \(width)x\(height) image")
        }
        var result = self
        for (p, flag) in flags.enumerated() where flag { (result.pixels[p * 3], result.pixels[p * 3 + 1], result.pixels[p * 3 + 2]) = color }
        return result
    }
}

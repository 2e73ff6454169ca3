import Foundation
import Imaging
import TensorCore

/// A region where a shortcut could sit (a watermark, a ruler, a scanner tag), as a pixel mask in
/// the coordinates of the model's input.
public struct RegionMask: Sendable, Equatable {
    public let height: Int
    public let width: Int
    /// `height * width` flags, row-major.
    public let inside: [Bool]

    public init(height: Int, width: Int, inside: [Bool]) throws {
        guard height > 0, width > 0, inside.count == MemoryBudget.product(height, width) else {
            throw AuditError.invalid("a \(height)x\(width) mask cannot hold \(inside.count) values")
        }
        self.height = height
        self.width = width
        self.inside = inside
    }

    /// The union of rectangles `(x, y, width, height)` in input pixels.
    public init(rectangles: [(x: Int, y: Int, width: Int, height: Int)], height: Int, width: Int) throws {
        guard height > 0, width > 0, let count = MemoryBudget.product(height, width) else {
            throw AuditError.invalid("a mask of \(width)x\(height) pixels is not possible")
        }
        try MemoryBudget.check(count, for: "a \(width)x\(height) mask")
        var inside = [Bool](repeating: false, count: count)
        for r in rectangles {
            // Compared without adding: x + width may overflow.
            guard r.width > 0, r.height > 0, r.x >= 0, r.y >= 0, r.width <= width - r.x, r.height <= height - r.y else {
                throw AuditError.invalid("rectangle \(r.x),\(r.y),\(r.width),\(r.height) does not lie inside the \(width)x\(height) input")
            }
            for y in r.y..<r.y + r.height { for x in r.x..<r.x + r.width { inside[y * width + x] = true } }
        }
        try self.init(height: height, width: width, inside: inside)
    }

    /// A mask from a PNG: pixels brighter than mid-grey are inside. A mask the size of the model
    /// input is used as it is; any other size is taken to be in original-image coordinates and
    /// goes through the images' own resize and crop (nearest neighbour).
    public init(png url: URL, preprocessing: Preprocessing, height: Int, width: Int) throws {
        var image = try preprocessing.load(url)
        if image.width != width || image.height != height {
            image = try preprocessing.resizedAndCropped(image, nearest: true)
        }
        guard image.width == width, image.height == height else {
            throw AuditError.invalid("mask \(url.path) is \(image.width)x\(image.height) after preprocessing; the input is \(width)x\(height)")
        }
        let inside = (0..<width * height).map { p in (0..<3).map { Int(image.pixels[p * 3 + $0]) }.max() ?? 0 > 127 }
        guard inside.contains(true) else { throw AuditError.invalid("mask \(url.path) has no pixel inside the region (none brighter than 127)") }
        try self.init(height: height, width: width, inside: inside)
    }

    /// The share of the image the region covers: the in-region attention of a uniform map.
    public var area: Double { Double(inside.filter { $0 }.count) / Double(inside.count) }
}

/// How much one heatmap relies on a region.
public struct RegionScores: Sendable, Equatable, Codable {
    /// `Σ_region h / Σ h` over the non-negative heatmap: the share of attention inside (0 when the map is empty).
    public let inMask: Double
    /// Whether the heatmap's maximum (first one in row-major order) lies inside: the pointing game.
    public let pointingHit: Bool
    /// IoU of the region and the heatmap thresholded at `fraction · max`.
    public let iou: Double

    public init(heatmap: [Float], mask: RegionMask, iouFraction: Double = 0.5) {
        var total = 0.0
        var inside = 0.0
        var best = -Float.infinity
        var bestIndex = 0
        for (i, value) in heatmap.enumerated() {
            let v = Double(max(value, 0))
            total += v
            if mask.inside[i] { inside += v }
            if value > best {
                best = value
                bestIndex = i
            }
        }
        inMask = total > 0 ? inside / total : 0
        pointingHit = mask.inside[bestIndex]
        let threshold = Float(iouFraction) * best
        var intersection = 0
        var union = 0
        for (i, value) in heatmap.enumerated() {
            let hot = best > 0 && value >= threshold
            if hot && mask.inside[i] { intersection += 1 }
            if hot || mask.inside[i] { union += 1 }
        }
        iou = union > 0 ? Double(intersection) / Double(union) : 0
    }
}

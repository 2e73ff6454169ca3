import Foundation
import Imaging
import TensorCore

/// A region where a shortcut could sit (a watermark, a ruler, a scanner tag), as a pixel mask in
/// the coordinates of the model's input.
public struct RegionMask: Sendable, Equatable {
    /// The mask's height in pixels.
    public let height: Int
    /// The mask's width in pixels.
    public let width: Int
    /// `height * width` flags, row-major.
    public let inside: [Bool]

    /// A mask from one flag per pixel, row-major; throws when the count does not match.
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

    /// The region a picture marks (pixels brighter than mid-grey are inside), read in the space
    /// it was drawn in and brought into model-input coordinates.
    ///
    /// Which space: `space` when given; otherwise a mask of the images' size is in image
    /// coordinates (it goes through exactly the images' resize and crop, by nearest neighbour), a
    /// mask of the model's input size on images of another size is in model coordinates, and any
    /// other size is an error.
    /// - Parameters:
    ///   - name: The mask's file name, for messages.
    ///   - imageSize: The size of the images (the first image of the audit).
    /// - Returns: The mask, its space, and why that space, in words.
    public static func resolve(
        _ picture: RGBImage, name: String, space: MaskSpace?, imageSize: (width: Int, height: Int), preprocessing: Preprocessing,
        inputHeight: Int, inputWidth: Int
    ) throws -> (mask: RegionMask, space: MaskSpace, reason: String) {
        let size = "\(picture.width)x\(picture.height)"
        let images = "\(imageSize.width)x\(imageSize.height)"
        let input = "\(inputWidth)x\(inputHeight)"
        let fitsImages = picture.width == imageSize.width && picture.height == imageSize.height
        let fitsModel = picture.width == inputWidth && picture.height == inputHeight
        let chosen: MaskSpace
        switch space {
        case .image?:
            guard fitsImages else { throw AuditError.invalid("--mask-space image: \(name) is \(size) but the images are \(images)") }
            chosen = .image
        case .model?:
            guard fitsModel else { throw AuditError.invalid("--mask-space model: \(name) is \(size) but the model's input is \(input)") }
            chosen = .model
        case nil:
            guard fitsImages || fitsModel else {
                throw AuditError.invalid(
                    "\(name) is \(size): neither the images' size (\(images)) nor the model's input size (\(input)); "
                        + "draw the mask at one of them (--mask-space image|model says which)")
            }
            chosen = fitsImages ? .image : .model
        }
        let steps = preprocessing.steps(width: imageSize.width, height: imageSize.height)
        let reason: String
        switch chosen {
        case .image:
            reason = (space == nil ? "it has the images' size (\(images)), so " : "")
                + "it is in image coordinates and went through the images' transform (\(steps))"
        case .model:
            reason = (space == nil ? "it has the model's input size (\(input)) and the images are \(images), so " : "")
                + "it is in model-input coordinates, used as it is"
        }
        let placed = chosen == .image ? try preprocessing.resizedAndCropped(picture, nearest: true) : picture
        guard placed.width == inputWidth, placed.height == inputHeight else {
            throw AuditError.invalid("\(name) is \(placed.width)x\(placed.height) after the images' transform; the model's input is \(input)")
        }
        let inside = (0..<inputWidth * inputHeight).map { p in (0..<3).map { Int(placed.pixels[p * 3 + $0]) }.max() ?? 0 > 127 }
        guard inside.contains(true) else { throw AuditError.invalid("\(name) has no pixel inside the region (none brighter than 127)") }
        return (try RegionMask(height: inputHeight, width: inputWidth, inside: inside), chosen, reason)
    }

    /// The region as a picture, white inside, for ``resolve(_:name:space:imageSize:preprocessing:inputHeight:inputWidth:)``.
    public var picture: RGBImage {
        get throws { try RGBImage(width: width, height: height, pixels: inside.flatMap { $0 ? [255, 255, 255] : [0, 0, 0] }) }
    }

    /// The flags packed eight to a byte and base64-encoded, for the audit's configuration.
    public var packed: String {
        var bytes = [UInt8](repeating: 0, count: (inside.count + 7) / 8)
        for (i, flag) in inside.enumerated() where flag { bytes[i / 8] |= 1 << UInt8(i % 8) }
        return Data(bytes).base64EncodedString()
    }

    /// The region back from ``packed``.
    public init(packed: String, height: Int, width: Int) throws {
        guard let data = Data(base64Encoded: packed), data.count == (height * width + 7) / 8 else {
            throw AuditError.invalid("the stored region does not hold \(height)x\(width) flags")
        }
        let bytes = [UInt8](data)
        try self.init(height: height, width: width, inside: (0..<height * width).map { bytes[$0 / 8] & (1 << UInt8($0 % 8)) != 0 })
    }

    /// Pixels inside the region with a 4-neighbour outside it (or on the image's edge): its outline.
    public var outline: [Bool] {
        (0..<height * width).map { p in
            guard inside[p] else { return false }
            let (y, x) = (p / width, p % width)
            return y == 0 || x == 0 || y == height - 1 || x == width - 1 || !inside[p - width] || !inside[p + width]
                || !inside[p - 1] || !inside[p + 1]
        }
    }

    /// The share of the image the region covers: the in-region attention of a uniform map.
    public var area: Double { Double(inside.filter { $0 }.count) / Double(inside.count) }
}

/// The coordinates a shortcut region is drawn in.
public enum MaskSpace: String, Sendable, Codable, CaseIterable {
    /// The original images' pixels: the mask goes through the images' resize and crop.
    case image
    /// The model input's pixels: the mask is used as it is.
    case model
}

/// How much one heatmap relies on a region.
public struct RegionScores: Sendable, Equatable, Codable {
    /// `Σ_region h / Σ h` over the non-negative heatmap: the share of attention inside (0 when the map is empty).
    public let inMask: Double
    /// Whether the heatmap's maximum (first one in row-major order) lies inside: the pointing game.
    public let pointingHit: Bool
    /// IoU of the region and the heatmap thresholded at `fraction · max`.
    public let iou: Double

    /// Scores `heatmap` (row-major, the mask's size) against `mask`.
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

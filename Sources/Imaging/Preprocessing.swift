import Foundation
import TensorCore

/// torchvision's classification preprocessing, step for step: `Resize(resize)` of the shorter
/// side (PIL bilinear, antialiased), `CenterCrop(crop)`, `ToTensor()`, `Normalize(mean, std)`.
public struct Preprocessing: Sendable, Equatable {
    /// Mean and standard deviation per channel.
    public struct Normalization: Sendable, Equatable {
        /// The per-channel mean subtracted, in [0, 1] units.
        public var mean: [Float]
        /// The per-channel standard deviation divided by.
        public var std: [Float]

        /// A normalization from three means and three standard deviations.
        public init(mean: [Float], std: [Float]) {
            self.mean = mean
            self.std = std
        }

        /// ImageNet statistics, what torchvision's pretrained models expect.
        public static let imagenet = Normalization(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])
        /// mean = std = 0.5: maps [0, 1] to [-1, 1] (many timm and ViT checkpoints).
        public static let half = Normalization(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5])
        /// No normalization: values stay in [0, 1].
        public static let none = Normalization(mean: [0, 0, 0], std: [1, 1, 1])

        /// A preset by name: `imagenet`, `half` or `none`.
        public static func preset(_ name: String) -> Normalization? {
            ["imagenet": imagenet, "half": half, "none": none][name]
        }
    }

    /// The shorter side after resizing; `nil` skips the resize.
    public var resize: Int?
    /// The centre crop, height and width; `nil` skips the crop.
    public var crop: (height: Int, width: Int)?
    /// The normalization applied after scaling to [0, 1].
    public var normalization: Normalization
    /// How ``tensor(_:)`` orders the axes: `[3, H, W]` for `.nchw` models, `[H, W, 3]` for
    /// channels-last ones (Keras); batches add `N` in front.
    public var layout: ImageLayout
    /// Images that already have the crop's size are used as they are, neither resized nor
    /// cropped. Resizing such an image to `crop / 0.875` and cropping it back moves and rescales
    /// everything in it, a shortcut region given in its pixels included.
    public var inputSizedAsIs: Bool

    /// torchvision's transform exactly; `inputSizedAsIs` exempts images of the crop's size.
    public init(
        resize: Int?, crop: (height: Int, width: Int)?, normalization: Normalization = .imagenet, layout: ImageLayout = .nchw,
        inputSizedAsIs: Bool = false
    ) {
        self.resize = resize
        self.crop = crop
        self.normalization = normalization
        self.layout = layout
        self.inputSizedAsIs = inputSizedAsIs
    }

    /// The usual evaluation transform for a model taking `height` x `width` inputs: resize the
    /// shorter side to `crop / 0.875` (256 for 224), then centre-crop; images that already are
    /// `height` x `width` are used as they are.
    public static func evaluation(height: Int, width: Int, normalization: Normalization = .imagenet) -> Preprocessing {
        // Sizes come from a model's declared input: clamp before converting, ``validate()`` refuses what is absurd.
        let resize = (Double(min(height, width)) / 0.875).rounded(.down)
        return Preprocessing(
            resize: resize < 0x1p62 ? Int(resize) : 1 << 62, crop: (height, width), normalization: normalization,
            inputSizedAsIs: true)
    }

    /// Throws unless the resize and the crop are positive and their images fit ``RGBImage/maximumPixels``
    /// (an image resized to a shorter side of `resize` has at least `resize²` pixels).
    public func validate() throws {
        if let crop {
            guard crop.height >= 1, crop.width >= 1, let pixels = MemoryBudget.product(crop.height, crop.width),
                pixels <= RGBImage.maximumPixels
            else {
                throw ImageError.invalid(
                    "a crop of \(crop.height)x\(crop.width) pixels is not possible: each side must be at least 1 and the crop within the \(RGBImage.maximumPixels)-pixel limit")
            }
        }
        if let resize {
            guard resize >= 1, let pixels = MemoryBudget.product(resize, resize), pixels <= RGBImage.maximumPixels else {
                throw ImageError.invalid(
                    "resizing the shorter side to \(resize) pixels is not possible: it must be from 1 to \(Preprocessing.largestResize) (larger images exceed the \(RGBImage.maximumPixels)-pixel limit)")
            }
        }
    }

    /// The largest shorter side a resize may ask for.
    public static let largestResize = Int(Double(RGBImage.maximumPixels).squareRoot())

    /// The size of a `width` x `height` image after the resize (before the crop); refuses sizes past
    /// ``RGBImage/maximumPixels`` or the ``MemoryBudget``, so an image of extreme aspect ratio
    /// cannot ask for gigabytes.
    public func resizedSize(width: Int, height: Int) throws -> (width: Int, height: Int) {
        try validate()
        guard let resize, !usesAsIs(width: width, height: height) else { return (width, height) }
        guard width > 0, height > 0 else { throw ImageError.invalid("an image of \(width)x\(height) pixels cannot be resized") }
        // torchvision: the shorter side becomes `resize`, the longer keeps the aspect (truncated).
        let (short, long) = width <= height ? (width, height) : (height, width)
        let exactLong = (Double(resize) * Double(long) / Double(short)).rounded(.towardZero)
        let newLong = exactLong < 0x1p62 ? Int(exactLong) : 1 << 62
        let size = width <= height ? (width: resize, height: newLong) : (width: newLong, height: resize)
        guard let pixels = MemoryBudget.product(resize, newLong), pixels <= RGBImage.maximumPixels else {
            throw ImageError.invalid(
                "resizing a \(width)x\(height) image to a shorter side of \(resize) makes it \(size.width)x\(size.height) pixels, more than the \(RGBImage.maximumPixels)-pixel limit")
        }
        // The resized image and the horizontal pass's rows: at most twice its bytes.
        try MemoryBudget.check(pixels * 6, for: "resizing a \(width)x\(height) image to \(size.width)x\(size.height)")
        return size
    }

    /// Reads an image file, refusing it before decoding when its resize would not fit (see ``resizedSize(width:height:)``).
    public func load(_ url: URL) throws -> RGBImage {
        try RGBImage(contentsOf: url) { width, height in
            do { _ = try resizedSize(width: width, height: height) } catch ImageError.invalid(let reason) {
                throw ImageError.unsupported(path: url.path, reason: reason)
            }
        }
    }

    /// Equal steps and settings.
    public static func == (a: Preprocessing, b: Preprocessing) -> Bool {
        a.resize == b.resize && a.crop?.height == b.crop?.height && a.crop?.width == b.crop?.width
            && a.normalization == b.normalization && a.layout == b.layout && a.inputSizedAsIs == b.inputSizedAsIs
    }

    /// Whether an image of this size is used as it is (see ``inputSizedAsIs``).
    public func usesAsIs(width: Int, height: Int) -> Bool {
        inputSizedAsIs && crop.map { $0.width == width && $0.height == height } == true
    }

    /// The steps an image of this size goes through, in words: `as is` or
    /// `resize 73, centre crop 64x64`.
    public func steps(width: Int, height: Int) -> String {
        if usesAsIs(width: width, height: height) { return "as is" }
        let parts = [resize.map { "resize the shorter side to \($0)" }, crop.map { "centre crop \($0.height)x\($0.width)" }]
        let joined = parts.compactMap { $0 }.joined(separator: ", ")
        return joined.isEmpty ? "as is" : joined
    }

    /// The transform in words, for reports.
    public var summary: String {
        let n = normalization
        let resizing = [resize.map { "resize the shorter side to \($0)" }, crop.map { "centre crop \($0.height)x\($0.width)" }]
            .compactMap { $0 }.joined(separator: ", ")
        var text = resizing.isEmpty ? "no resize or crop" : resizing
        if inputSizedAsIs, let crop { text = "images of \(crop.height)x\(crop.width) as they are; others: " + text }
        return text + "; normalize mean \(n.mean) std \(n.std)"
    }

    /// The image after resizing and cropping, still 8-bit: what an overlay is drawn on.
    /// `nearest` resizes by nearest neighbour instead, for masks.
    public func resizedAndCropped(_ image: RGBImage, nearest: Bool = false) throws -> RGBImage {
        if usesAsIs(width: image.width, height: image.height) { return image }
        var result = image
        let (width, height) = try resizedSize(width: image.width, height: image.height)
        if resize != nil {
            result = try nearest ? Resample.nearest(image, width: width, height: height) : Resample.bilinear(image, width: width, height: height)
        }
        if let crop { result = try Preprocessing.centerCrop(result, height: crop.height, width: crop.width) }
        return result
    }

    /// The float32 tensor the model takes: `[3, H, W]`, or `[H, W, 3]` when ``layout`` is `.nhwc`.
    public func tensor(_ image: RGBImage) throws -> Tensor { try normalized(resizedAndCropped(image)) }

    /// The float32 tensor of an image already resized and cropped (``resizedAndCropped(_:nearest:)``).
    public func normalized(_ prepared: RGBImage) throws -> Tensor {
        let plane = prepared.width * prepared.height
        let shape = layout == .nchw ? [3, prepared.height, prepared.width] : [prepared.height, prepared.width, 3]
        return try Tensor.build(Float.self, shape: shape) { out in
            for c in 0..<3 {
                let mean = normalization.mean[c]
                let std = normalization.std[c]
                for p in 0..<plane {
                    // ToTensor divides by 255 in float32, then Normalize subtracts and divides.
                    let value = (Float(prepared.pixels[p * 3 + c]) / 255 - mean) / std
                    out[layout == .nchw ? c * plane + p : p * 3 + c] = value
                }
            }
        }
    }

    /// torchvision's `CenterCrop`: offsets rounded half to even, zero padding when the crop is larger.
    static func centerCrop(_ image: RGBImage, height: Int, width: Int) throws -> RGBImage {
        if height == image.height && width == image.width { return image }
        // Pad symmetrically first when the crop exceeds the image, as torchvision does.
        let padTop = height > image.height ? (height - image.height) / 2 : 0
        let padLeft = width > image.width ? (width - image.width) / 2 : 0
        let paddedHeight = max(height, image.height)
        let paddedWidth = max(width, image.width)
        let top = Int((Double(paddedHeight - height) / 2).rounded(.toNearestOrEven))
        let left = Int((Double(paddedWidth - width) / 2).rounded(.toNearestOrEven))
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            let sourceY = y + top - padTop
            guard sourceY >= 0, sourceY < image.height else { continue }
            for x in 0..<width {
                let sourceX = x + left - padLeft
                guard sourceX >= 0, sourceX < image.width else { continue }
                for c in 0..<3 { pixels[(y * width + x) * 3 + c] = image.pixels[(sourceY * image.width + sourceX) * 3 + c] }
            }
        }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }
}

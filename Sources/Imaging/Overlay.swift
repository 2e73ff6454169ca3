import TensorCore

/// Heatmaps drawn over images, with pytorch-grad-cam's arithmetic.
public enum Overlay {
    /// The heatmap coloured and blended over the image: pytorch-grad-cam's `show_cam_on_image`.
    ///
    /// In float32, as NumPy computes it: `cam = α · colormap(uint8(255 · h)) / 255 + (1 − α) · image / 255`,
    /// then `cam / max(cam)`, then `uint8(255 · cam)`.
    /// - Parameters:
    ///   - image: The image the model saw (after resizing and cropping).
    ///   - heatmap: `[H, W]` values in [0, 1], the image's size.
    ///   - alpha: The heatmap's weight; pytorch-grad-cam's `1 − image_weight` (0.5 by default).
    public static func overlay(image: RGBImage, heatmap: Tensor, alpha: Float = 0.5, colormap: Colormap = .jet) throws -> RGBImage {
        guard heatmap.shape == [image.height, image.width] else {
            throw ImageError.invalid("heatmap \(heatmap.shape) does not match the \(image.height)x\(image.width) image")
        }
        return try overlay(image: image, values: heatmap.converted(to: .float32).scalars(as: Float.self), alpha: alpha, colormap: colormap)
    }

    /// ``overlay(image:heatmap:alpha:colormap:)`` from the map's values (`height * width`, row-major),
    /// as a batch of CAM results holds them: no tensor is sliced or copied on the way to the picture.
    public static func overlay<Values: Collection>(image: RGBImage, values: Values, alpha: Float = 0.5, colormap: Colormap = .jet) throws
        -> RGBImage where Values.Element == Float
    {
        guard values.count == image.height * image.width else {
            throw ImageError.invalid("a heatmap of \(values.count) values does not match the \(image.height)x\(image.width) image")
        }
        guard (0...1).contains(alpha) else { throw ImageError.invalid("alpha must be in [0, 1], got \(alpha)") }
        let colors = colormap.apply(values)
        let imageWeight = 1 - alpha
        var cam = [Float](repeating: 0, count: colors.count)
        var largest: Float = 0
        for i in 0..<colors.count {
            cam[i] = alpha * (Float(colors[i]) / 255) + imageWeight * (Float(image.pixels[i]) / 255)
            largest = max(largest, cam[i])
        }
        let pixels = cam.map { UInt8(clamping: Int(255 * ($0 / (largest > 0 ? largest : 1)))) }
        return try RGBImage(width: image.width, height: image.height, pixels: pixels)
    }

    /// Guided backpropagation `[H, W, 3]` as an image: pytorch-grad-cam's `deprocess_image`
    /// (standardize, scale by 0.1, centre on 0.5, clip, `uint8(255 · x)`).
    public static func deprocess(_ gradients: Tensor) throws -> RGBImage {
        guard gradients.rank == 3, gradients.shape[2] == 3 else {
            throw ImageError.invalid("guided backpropagation must be [H, W, 3], got \(gradients.shape)")
        }
        let values = try gradients.converted(to: .float32).scalars(as: Float.self)
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(max(values.count, 1))
        let variance = values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(max(values.count, 1))
        let std = Float(variance.squareRoot())
        let pixels = values.map { value -> UInt8 in
            let x = (value - Float(mean)) / (std + 1e-5) * 0.1 + 0.5
            return UInt8(clamping: Int(min(max(x, 0), 1) * 255))
        }
        return try RGBImage(width: gradients.shape[1], height: gradients.shape[0], pixels: pixels)
    }
}

import Explain
import Foundation
import Imaging
import TensorCore

extension GradCAMHeatmapGenerator {
    /// The heatmap blended over the image the model saw (pytorch-grad-cam's `show_cam_on_image`).
    public func overlay(_ image: RGBImage, heatmap: Tensor, alpha: Float = 0.5, colormap: Colormap = .jet) throws -> RGBImage {
        try Overlay.overlay(image: image, heatmap: heatmap, alpha: alpha, colormap: colormap)
    }

    /// Writes the overlay as a PNG at `savePath`.
    public func visualize(
        _ image: RGBImage, heatmap: Tensor, alpha: Float = 0.5, colormap: Colormap = .jet, savePath: String
    ) throws {
        try PNG.write(overlay(image, heatmap: heatmap, alpha: alpha, colormap: colormap), to: URL(fileURLWithPath: savePath))
    }
}

import Audit
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

extension GradCAMHeatmapGenerator {
    /// Compares attention across groups (the seed's `compare_groups`): `heatmaps` are `[N, H, W]`
    /// maps, or `[N, C, H, W]` images whose heatmaps (each image's prediction) are computed first.
    public func compareGroups(
        _ heatmaps: Tensor, groups: [String], options: ComparisonOptions = ComparisonOptions()
    ) throws -> AttentionOverlapResult {
        let maps = heatmaps.rank == 4 ? try explain(heatmaps).heatmaps : heatmaps
        return try AttentionOverlapResult.compare(maps, groups: groups, options: options)
    }
}

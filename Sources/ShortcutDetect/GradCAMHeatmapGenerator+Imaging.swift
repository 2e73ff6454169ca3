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

    /// The model's input size when it is fixed: `(height, width)` of its `[N, C, H, W]` input.
    public var fixedInputSize: (height: Int, width: Int)? {
        guard let dims = executor.inputs.first?.shape, dims.count == 4,
            case .fixed(let height) = dims[2], case .fixed(let width) = dims[3]
        else { return nil }
        return (height, width)
    }
}

extension Preprocessing {
    /// Reads and preprocesses image files into one `[N, 3, H, W]` batch, decoding in parallel;
    /// also returns each image as the model saw it (resized and cropped), for overlays.
    public func batch(_ urls: [URL]) throws -> (tensor: Tensor, images: [RGBImage]) {
        let results = ConcurrentResults<(Tensor, RGBImage)>(count: urls.count)
        DispatchQueue.concurrentPerform(iterations: urls.count) { index in
            results.set(index) {
                let image = try RGBImage(contentsOf: urls[index])
                return (try tensor(image), try resizedAndCropped(image))
            }
        }
        let items = try results.values()
        guard let first = items.first?.0 else { throw ImageError.invalid("no images to preprocess") }
        var values: [Float] = []
        values.reserveCapacity(first.count * items.count)
        for (tensor, _) in items { values += try tensor.scalars(as: Float.self) }
        return (try Tensor(shape: [items.count] + first.shape, scalars: values), items.map(\.1))
    }
}

/// Collects results written from concurrent iterations, keeping the first error.
public final class ConcurrentResults<Value>: @unchecked Sendable {
    private var slots: [Result<Value, Error>?]
    private let lock = NSLock()

    public init(count: Int) { slots = Array(repeating: nil, count: count) }

    public func set(_ index: Int, _ body: () throws -> Value) {
        let result = Result(catching: body)
        lock.lock()
        slots[index] = result
        lock.unlock()
    }

    public func values() throws -> [Value] { try slots.map { try ($0 ?? .failure(ImageError.invalid("missing result"))).get() } }
}

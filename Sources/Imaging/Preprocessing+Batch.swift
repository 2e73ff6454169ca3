import Foundation
import TensorCore

extension Preprocessing {
    /// Reads and preprocesses image files into one `[N, 3, H, W]` batch (`[N, H, W, 3]` for a
    /// channels-last ``layout``), decoding in parallel; also returns each image as the model saw it
    /// (resized and cropped), for overlays, and each file's own size.
    public func batch(_ urls: [URL]) throws -> (tensor: Tensor, images: [RGBImage], sizes: [(width: Int, height: Int)]) {
        let results = ConcurrentResults<(Tensor, RGBImage, (width: Int, height: Int))>(count: urls.count)
        DispatchQueue.concurrentPerform(iterations: urls.count) { index in
            results.set(index) {
                let image = try load(urls[index])
                return (try tensor(image), try resizedAndCropped(image), (image.width, image.height))
            }
        }
        let items = try results.values()
        guard let first = items.first?.0 else { throw ImageError.invalid("no images to preprocess") }
        if let odd = items.firstIndex(where: { $0.0.shape != first.shape }) {
            throw ImageError.invalid(
                "\(urls[odd].path) preprocesses to \(items[odd].0.shape), not \(first.shape) like \(urls[0].lastPathComponent); "
                    + "give a crop (the model's input size) so every image ends the same size")
        }
        var values: [Float] = []
        values.reserveCapacity(first.count * items.count)
        for (tensor, _, _) in items { values += try tensor.scalars(as: Float.self) }
        return (try Tensor(shape: [items.count] + first.shape, scalars: values), items.map(\.1), items.map(\.2))
    }
}

/// Collects results written from concurrent iterations, keeping the first error.
package final class ConcurrentResults<Value>: @unchecked Sendable {
    private var slots: [Result<Value, Error>?]
    private let lock = NSLock()

    package init(count: Int) { slots = Array(repeating: nil, count: count) }

    package func set(_ index: Int, _ body: () throws -> Value) {
        let result = Result(catching: body)
        lock.lock()
        slots[index] = result
        lock.unlock()
    }

    package func values() throws -> [Value] { try slots.map { try ($0 ?? .failure(ImageError.invalid("missing result"))).get() } }
}

import Foundation
import TensorCore

extension Preprocessing {
    /// Reads and preprocesses image files into one `[N, 3, H, W]` batch (`[N, H, W, 3]` for a
    /// channels-last ``layout``), decoding in parallel; also returns each image as the model saw it
    /// (resized and cropped), for overlays, and each file's own size.
    public func batch(_ urls: [URL]) throws -> (tensor: Tensor, images: [RGBImage], sizes: [(width: Int, height: Int)]) {
        let items = try prepareEach(urls).map { try $0.get() }
        return (try Preprocessing.stack(items.map(\.tensor), files: urls), items.map(\.image), items.map(\.size))
    }

    /// One file read, resized, cropped and normalized: the model's input, the image as the model
    /// saw it, and the file's own size.
    package func prepare(_ url: URL) throws -> PreparedImage {
        let image = try load(url)
        let prepared = try resizedAndCropped(image)
        return PreparedImage(tensor: try normalized(prepared), image: prepared, size: (image.width, image.height))
    }

    /// ``prepare(_:)`` for each file, in parallel; each file succeeds or fails on its own.
    package func prepareEach(_ urls: [URL]) -> [Result<PreparedImage, Error>] {
        let results = ConcurrentResults<PreparedImage>(count: urls.count)
        DispatchQueue.concurrentPerform(iterations: urls.count) { index in results.set(index) { try prepare(urls[index]) } }
        return results.results
    }

    /// Stacks tensors of one shape along a new first axis; `files` name them in errors.
    package static func stack(_ tensors: [Tensor], files: [URL]) throws -> Tensor {
        guard let first = tensors.first else { throw ImageError.invalid("no images to preprocess") }
        if let odd = tensors.firstIndex(where: { $0.shape != first.shape }) {
            throw ImageError.invalid(
                "\(files[odd].path) preprocesses to \(tensors[odd].shape), not \(first.shape) like \(files[0].lastPathComponent); "
                    + "give a crop (the model's input size) so every image ends the same size")
        }
        var values: [Float] = []
        values.reserveCapacity(first.count * tensors.count)
        for tensor in tensors { values += try tensor.scalars(as: Float.self) }
        return try Tensor(shape: [tensors.count] + first.shape, scalars: values)
    }
}

/// An image file made ready for the model (see ``Preprocessing/prepare(_:)``).
package struct PreparedImage: Sendable {
    /// `[3, H, W]` (or `[H, W, 3]`) float32, normalized.
    package let tensor: Tensor
    /// The image as the model saw it: resized and cropped, 8-bit.
    package let image: RGBImage
    /// The file's own size.
    package let size: (width: Int, height: Int)
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

    package func values() throws -> [Value] { try results.map { try $0.get() } }

    /// Each iteration's outcome.
    package var results: [Result<Value, Error>] {
        lock.withLock { slots.map { $0 ?? .failure(ImageError.invalid("missing result")) } }
    }
}

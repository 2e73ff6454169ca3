import Foundation
import TensorCore

extension Preprocessing {
    /// Reads and preprocesses image files into one `[N, 3, H, W]` batch (`[N, H, W, 3]` for a
    /// channels-last ``layout``), decoding in parallel;
    /// also returns each image as the model saw it (resized and cropped), for overlays.
    public func batch(_ urls: [URL]) throws -> (tensor: Tensor, images: [RGBImage]) {
        let results = ConcurrentResults<(Tensor, RGBImage)>(count: urls.count)
        DispatchQueue.concurrentPerform(iterations: urls.count) { index in
            results.set(index) {
                let image = try load(urls[index])
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

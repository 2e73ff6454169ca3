import Foundation

/// Work that overlaps with the caller's: a stage before it (``Prefetch``, e.g. decoding the next
/// batch of images while the model runs on this one) and a stage after it (``Drain``, e.g.
/// encoding the last batch's pictures), each on its own thread and at most `depth` items away,
/// so memory stays bounded however long the stream.
///
/// Errors travel in order: a producer's error is thrown by the ``Prefetch/next()`` that would
/// have returned its item, a consumer's by the next ``Drain/submit(_:)`` or ``Drain/finish()``.
public final class Prefetch<Element>: @unchecked Sendable {
    private let condition = NSCondition()
    private var ready: [Result<Element, Error>] = []
    private var done = false
    private var cancelled = false
    private let depth: Int

    /// Starts calling `produce` on a new thread until it returns `nil`, throws, or ``cancel()`` is called.
    public init(depth: Int = 1, name: String = "shortcut-detect prefetch", _ produce: @escaping () throws -> Element?) {
        self.depth = max(depth, 1)
        // The producer runs on this thread alone; the box only carries it there.
        let produce = Unchecked(produce)
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while ready.count >= self.depth && !cancelled { condition.wait() }
                let stop = cancelled
                condition.unlock()
                if stop { break }
                let result = Result { try produce.value() }
                condition.lock()
                switch result {
                case .success(let element?): ready.append(.success(element))
                case .success(nil): done = true
                case .failure(let error):
                    ready.append(.failure(error))
                    done = true
                }
                let finished = done
                condition.broadcast()
                condition.unlock()
                if finished { break }
            }
            condition.lock()
            done = true
            condition.broadcast()
            condition.unlock()
        }
        thread.name = name
        thread.start()
    }

    deinit { cancel() }

    /// The next element, or `nil` once the producer is done.
    public func next() throws -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while ready.isEmpty && !done { condition.wait() }
        guard !ready.isEmpty else { return nil }
        let first = ready.removeFirst()
        condition.broadcast()
        return try first.get()
    }

    /// Stops the producer after the element it is making (the caller failed or stopped early).
    public func cancel() {
        condition.lock()
        cancelled = true
        ready.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}

/// The stage after the caller's: elements are consumed in order on a thread of their own.
public final class Drain<Element>: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [Element] = []
    private var closed = false
    private var finished = false
    private var failure: Error?
    private let depth: Int

    /// Starts a thread that calls `consume` on each submitted element, in order.
    public init(depth: Int = 1, name: String = "shortcut-detect drain", _ consume: @escaping (Element) throws -> Void) {
        self.depth = max(depth, 1)
        let consume = Unchecked(consume)
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while queue.isEmpty && !closed { condition.wait() }
                guard !queue.isEmpty, failure == nil else {
                    finished = true
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                let element = queue.removeFirst()
                condition.broadcast()
                condition.unlock()
                do { try consume.value(element) } catch {
                    condition.lock()
                    failure = error
                    queue.removeAll()
                    closed = true
                    condition.broadcast()
                    condition.unlock()
                }
            }
        }
        thread.name = name
        thread.start()
    }

    deinit {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// Queues an element, waiting while `depth` are already waiting; throws the consumer's error.
    public func submit(_ element: Element) throws {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= depth && failure == nil && !closed { condition.wait() }
        if let failure { throw failure }
        guard !closed else { return }
        queue.append(element)
        condition.broadcast()
    }

    /// Drops what is queued and lets the thread end after the element it is consuming (the
    /// caller failed); waits for it.
    public func cancel() {
        condition.lock()
        defer { condition.unlock() }
        queue.removeAll()
        closed = true
        condition.broadcast()
        while !finished { condition.wait() }
    }

    /// Waits until every element was consumed; throws the consumer's error.
    public func finish() throws {
        condition.lock()
        defer { condition.unlock() }
        closed = true
        condition.broadcast()
        while !finished { condition.wait() }
        if let failure { throw failure }
    }
}

/// A value handed to one other thread, which alone uses it from then on.
private struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

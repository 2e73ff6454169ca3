/// How far a long operation has come: items done out of a total, reported after each batch.
///
/// Named apart from Foundation's `Progress`, which a file importing both would otherwise find ambiguous.
public struct BatchProgress: Sendable, Equatable {
    /// Items (images) finished so far.
    public let completed: Int
    /// Items the operation will process in all.
    public let total: Int

    /// Progress after `completed` of `total` items.
    public init(completed: Int, total: Int) {
        self.completed = completed
        self.total = total
    }

    /// `completed / total`, 1 for an empty operation.
    public var fraction: Double { total > 0 ? Double(completed) / Double(total) : 1 }
}

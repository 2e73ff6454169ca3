/// Why the detectors could not run.
public enum DetectorError: Error, Equatable, CustomStringConvertible {
    /// The embeddings, groups or labels are unusable (wrong shape, too few, not finite).
    case invalidInput(String)

    /// The problem in words.
    public var description: String {
        switch self {
        case .invalidInput(let reason): reason
        }
    }
}

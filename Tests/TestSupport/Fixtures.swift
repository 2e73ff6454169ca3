import Foundation
import TensorCore

/// Locations of the committed fixtures, found relative to this source file so tests run from any directory.
public enum Fixtures {
    /// The repository's `Fixtures/` folder.
    public static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// A file under `Fixtures/`.
    public static func url(_ relativePath: String) -> URL { root.appendingPathComponent(relativePath) }

    /// The folder a committed `.tar.gz` under `Fixtures/` unpacks to, unpacked once per process.
    ///
    /// Many small fixture files (the ONNX node tests) are committed as one archive: a thousand
    /// folders cost ten times their bytes on disk, and the files compress well together.
    public static func unpacked(_ relativeArchivePath: String) throws -> URL {
        try Unpacked.shared.folder(for: relativeArchivePath)
    }

    /// A fresh temporary directory, for tests that write files.
    public static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("shortcut-detect-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// How far one tensor is from another, element by element.
public struct TensorComparison: CustomStringConvertible {
    public let maxAbsoluteDifference: Double
    /// The largest `|expected|`, the scale the difference is judged against.
    public let maxExpectedMagnitude: Double
    /// `maxAbsoluteDifference / max(maxExpectedMagnitude, 1e-12)`.
    public var relativeToLargest: Double { maxAbsoluteDifference / max(maxExpectedMagnitude, 1e-12) }
    /// Whether shape and element type agree.
    public let sameShape: Bool
    /// Elements that differ by more than `absolute + relative * |expected|` (NaN where not matched by NaN counts too).
    public let mismatches: Int

    public var description: String {
        "max |diff| \(maxAbsoluteDifference), max |expected| \(maxExpectedMagnitude), mismatches \(mismatches), same shape \(sameShape)"
    }

    /// Compares element-wise, counting values outside `absolute + relative * |expected|` (numpy.isclose).
    public init(_ actual: Tensor, _ expected: Tensor, absolute: Double = 0, relative: Double = 0) throws {
        sameShape = actual.shape == expected.shape && actual.dtype == expected.dtype
        guard sameShape else {
            maxAbsoluteDifference = .infinity
            maxExpectedMagnitude = 0
            mismatches = max(actual.count, expected.count)
            return
        }
        let a = try actual.doubles()
        let e = try expected.doubles()
        var worst = 0.0
        var largest = 0.0
        var bad = 0
        for i in 0..<a.count {
            if a[i].isNaN || e[i].isNaN {
                if a[i].isNaN != e[i].isNaN { bad += 1 }
                continue
            }
            if a[i] == e[i] { largest = max(largest, abs(e[i])); continue }  // equal infinities too
            let difference = abs(a[i] - e[i])
            worst = max(worst, difference)
            largest = max(largest, abs(e[i]))
            if !(difference <= absolute + relative * abs(e[i])) { bad += 1 }
        }
        maxAbsoluteDifference = worst
        maxExpectedMagnitude = largest
        mismatches = bad
    }
}

/// The description of the error `body` throws, or "no error": lets tests assert on the message a user sees.
public func errorText(_ body: () throws -> Any) -> String {
    do {
        _ = try body()
        return "no error"
    } catch {
        return "\(error)"
    }
}

/// Deterministic random test data, drawn from TensorCore's ``SeededGenerator``.
public struct SeededRandom {
    private var generator: SeededGenerator

    public init(seed: UInt64) { generator = SeededGenerator(seed: seed) }

    /// A uniform value in `range`.
    public mutating func uniform(_ range: ClosedRange<Double>) -> Double { generator.uniform(range) }

    /// Values with magnitudes in `magnitude` and random signs: kept away from zero so that
    /// finite differences never straddle a kink (Relu, Clip, Max).
    public mutating func awayFromZero(_ count: Int, magnitude: ClosedRange<Double> = 0.1...1) -> [Double] {
        (0..<count).map { _ in (generator.next() & 1 == 0 ? 1 : -1) * generator.uniform(magnitude) }
    }
}

/// The archives unpacked so far in this process, each in its own temporary folder.
private final class Unpacked: @unchecked Sendable {
    static let shared = Unpacked()
    private let lock = NSLock()
    private var folders: [String: URL] = [:]

    func folder(for relativeArchivePath: String) throws -> URL {
        lock.lock()
        defer { lock.unlock() }
        if let folder = folders[relativeArchivePath] { return folder }
        let folder = try Fixtures.temporaryDirectory()
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        tar.arguments = ["tar", "-xzf", Fixtures.url(relativeArchivePath).path, "-C", folder.path]
        try tar.run()
        tar.waitUntilExit()
        guard tar.terminationStatus == 0 else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: Fixtures.url(relativeArchivePath).path])
        }
        folders[relativeArchivePath] = folder
        return folder
    }
}

/// Values appended from any thread, e.g. by a progress callback, read back in order.
public final class Recorded<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Value] = []

    public init() {}

    public func append(_ value: Value) { lock.withLock { items.append(value) } }

    public var values: [Value] { lock.withLock { items } }
}

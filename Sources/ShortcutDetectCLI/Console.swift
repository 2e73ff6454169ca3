import ArgumentParser
import Foundation
import ShortcutDetect

/// `--quiet` and `--verbose`, on every command.
struct ConsoleOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print nothing but errors (and the data asked for on standard output: --json, an output named -).")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Also print timings and details on standard error.")
    var verbose = false

    /// Sets ``Console/level``, while validating, so it holds before a command prints anything.
    func validate() throws {
        if quiet && verbose { throw ValidationError("--quiet and --verbose do not go together") }
        Console.level = quiet ? .quiet : verbose ? .verbose : .normal
    }
}

/// `--json`: the command's result as one JSON object on standard output, instead of the text.
struct JSONOption: ParsableArguments {
    @Flag(help: "Print the result as one JSON object on standard output instead of the text.")
    var json = false

    /// Sets ``Console/channel`` while validating, so no text reaches standard output.
    func validate() throws {
        if json { Console.channel = .json }
    }
}

/// Where a command's messages go, so that standard output stays clean when it carries data.
///
/// Results for people (``say(_:)``) go to standard output, or to standard error when standard
/// output carries a `.npy` (an output named `-`), and are dropped when it carries `--json`;
/// remarks (``note(_:)``) and details (``detail(_:)``, with `--verbose`) go to standard error.
/// `--quiet` drops everything but errors and the data itself.
enum Console {
    enum Level { case quiet, normal, verbose }

    /// What standard output carries.
    enum Channel { case text, json, data }

    private static let state = Locked((level: Level.normal, channel: Channel.text))

    static var level: Level {
        get { state.value.level }
        set { state.update { $0.level = newValue } }
    }

    static var channel: Channel {
        get { state.value.channel }
        set { state.update { $0.channel = newValue } }
    }

    static var quiet: Bool { level == .quiet }

    /// A result for people: what was found or written.
    static func say(_ text: String) {
        guard level != .quiet else { return }
        switch channel {
        case .text: print(text)
        case .json: break
        case .data: standardError(text)
        }
    }

    /// A remark on standard error, such as the layer chosen for the user.
    static func note(_ text: String) {
        guard level != .quiet else { return }
        standardError(text)
    }

    /// A detail on standard error, with `--verbose` only.
    static func detail(_ text: @autoclosure () -> String) {
        guard level == .verbose else { return }
        standardError(text())
    }

    /// Runs `body`; with `--verbose`, says how long it took (`what` in 12.3 ms).
    static func timed<R>(_ what: @autoclosure () -> String, _ body: () throws -> R) rethrows -> R {
        guard level == .verbose else { return try body() }
        let start = DispatchTime.now()
        let result = try body()
        detail("\(what()) in \(milliseconds(since: start))")
        return result
    }

    /// The time since `start`, as `12.3 ms` or `4.56 s`.
    static func milliseconds(since start: DispatchTime) -> String {
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
        return ms < 1000 ? String(format: "%.1f ms", ms) : String(format: "%.2f s", ms / 1000)
    }

    /// `value` as pretty JSON with sorted snake_case keys on standard output.
    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try StandardStreams.write(encoder.encode(value) + Data("\n".utf8))
    }

    /// A JSON object built from Foundation values (as `JSONSerialization` reads them) on standard output.
    static func json(object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try StandardStreams.write(data + Data("\n".utf8))
    }

    private static func standardError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// The model at `path`; with `--verbose`, how long reading it took.
func loadModel(_ path: String) throws -> Model {
    try Console.timed("read \(path)") { try Model(contentsOf: URL(fileURLWithPath: path)) }
}

/// A value behind a lock.
final class Locked<Value>: @unchecked Sendable {
    private var stored: Value
    private let lock = NSLock()

    init(_ value: Value) { stored = value }

    var value: Value { lock.withLock { stored } }

    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
}

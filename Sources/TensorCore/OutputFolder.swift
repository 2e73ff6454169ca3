import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A folder of results that appears whole or not at all.
///
/// Everything is written into a hidden staging folder beside the destination
/// (`.NAME.partial-PID-…`); ``commit(kind:producer:configuration:)`` adds `manifest.json`, which
/// lists every file with its size and SHA-256 and the run's configuration, then renames the
/// staging folder into place in one step. A run that is interrupted (SIGINT, SIGTERM, SIGHUP) removes
/// its staging folder; one that crashes leaves only the hidden staging folder, which the next run
/// into the same place removes. The destination therefore holds either the previous complete
/// folder or the new complete one, never a mix, and never a folder that looks complete but is not.
///
/// An existing destination is replaced only when asked (`overwrite`, the commands' `--overwrite`)
/// and only when it is empty or a folder this program wrote (it has our `manifest.json`): a
/// mistyped `--out` cannot wipe an unrelated folder.
public final class OutputFolder: @unchecked Sendable {
    /// Where the folder appears on ``commit(kind:producer:configuration:)``.
    public let destination: URL
    /// Where files are written until then.
    public let staging: URL
    private let lock = NSLock()
    private var entries: [String: ManifestEntry] = [:]
    private var finished = false

    /// Prepares to write `destination`.
    /// - Parameter overwrite: Replace a folder this program wrote before; without it such a
    ///   folder is refused.
    public init(_ destination: URL, overwrite: Bool) throws {
        self.destination = destination.standardizedFileURL
        let parent = self.destination.deletingLastPathComponent()
        let name = self.destination.lastPathComponent
        try Self.checkDestination(self.destination, overwrite: overwrite)
        do { try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true) } catch {
            throw OutputError("cannot create the folder \(parent.path) for \(self.destination.path)")
        }
        Self.removeAbandoned(in: parent, name: name)
        // Handlers first: once the staging folder exists, an interruption must find them in place.
        Interrupts.shared.install()
        let staging = Self.hiddenSibling(of: self.destination, "partial")
        self.staging = staging
        try Interrupts.shared.register(staging) {
            guard mkdir(staging.path, 0o755) == 0 else {
                throw OutputError("cannot create \(staging.path) to write \(self.destination.path): \(String(cString: strerror(errno)))")
            }
        }
    }

    deinit { if !finished { discard() } }

    /// The URL of `relativePath` inside the staging folder.
    public func url(_ relativePath: String) -> URL { staging.appendingPathComponent(relativePath) }

    /// Creates a subfolder (and its parents) of the staging folder.
    ///
    /// One `mkdir` per level below the staging folder, never the staging folder itself: when an
    /// interruption has just removed it, this fails instead of bringing it back for the process to
    /// leave behind.
    public func createFolder(_ relativePath: String) throws {
        var path = staging
        for part in relativePath.split(separator: "/") {
            path.appendPathComponent(String(part))
            guard mkdir(path.path, 0o755) == 0 || errno == EEXIST else {
                throw OutputError("cannot create \(path.path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Writes a whole file and records it for the manifest. Safe to call from several threads.
    public func write(_ data: Data, to relativePath: String) throws {
        let sink = try FileSink(url(relativePath), name: relativePath)
        try sink.append(data)
        try finish(sink)
    }

    /// A file written in pieces; pass it to ``finish(_:)`` when done.
    public func stream(_ relativePath: String) throws -> FileSink { try FileSink(url(relativePath), name: relativePath) }

    /// Closes a streamed file and records it for the manifest.
    public func finish(_ sink: FileSink) throws {
        let entry = try sink.closeFile()
        lock.withLock { entries[entry.path] = entry }
        TestCrash.event()
    }

    /// Records a file that was written into the staging folder some other way (hashing it now).
    public func adopt(_ relativePath: String) throws {
        let entry = try ManifestEntry(file: url(relativePath), path: relativePath)
        lock.withLock { entries[entry.path] = entry }
    }

    /// The files written so far, by path.
    public var files: [String: ManifestEntry] { lock.withLock { entries } }

    /// Writes `manifest.json` and moves the folder into place.
    /// - Parameters:
    ///   - kind: What the folder holds: `audit`, `gradcam`, `detect`.
    ///   - producer: The program and version that wrote it.
    ///   - configuration: The settings of the run, as the manifest records them.
    public func commit<Configuration: Codable>(kind: String, producer: String, configuration: Configuration) throws {
        let manifest = Manifest(
            kind: kind, producer: producer, configuration: configuration, files: files.values.sorted { $0.path < $1.path })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try encoder.encode(manifest) } catch {
            throw OutputError("the configuration of \(destination.path) holds a value JSON cannot store (NaN or infinity)")
        }
        let sink = try FileSink(url(Manifest<Configuration>.fileName), name: Manifest<Configuration>.fileName)
        try sink.append(data)
        _ = try sink.closeFile()
        TestCrash.event()
        try Interrupts.shared.withLock {
            try moveIntoPlace()
            finished = true
            Interrupts.shared.unregister(staging)
        }
    }

    /// Removes the staging folder: the run failed, the destination is left as it was.
    public func discard() {
        Interrupts.shared.withLock {
            finished = true
            Interrupts.shared.unregister(staging)
            try? FileManager.default.removeItem(at: staging)
        }
    }

    // MARK: - Moving into place

    /// Renames the staging folder to the destination: over nothing or an empty folder in one
    /// `rename`, over a previous folder by exchanging the two (`renameat2(RENAME_EXCHANGE)`), then
    /// removing the old one. Where exchanging is not supported, the old folder is moved aside
    /// first, so an interruption there leaves no folder rather than a mixed one.
    private func moveIntoPlace() throws {
        if rename(staging.path, destination.path) == 0 {
            TestCrash.event()
            return
        }
        let failure = errno
        guard failure == ENOTEMPTY || failure == EEXIST else {
            throw OutputError("cannot move \(staging.path) to \(destination.path): \(String(cString: strerror(failure)))")
        }
        if let exchange = Self.exchange, exchange(AT_FDCWD, staging.path, AT_FDCWD, destination.path, 2) == 0 {
            TestCrash.event()
            // The previous folder now sits at the staging path.
            try? FileManager.default.removeItem(at: staging)
            TestCrash.event()
            return
        }
        let aside = Self.hiddenSibling(of: destination, "old")
        guard rename(destination.path, aside.path) == 0 else {
            throw OutputError("cannot move the previous \(destination.path) aside: \(String(cString: strerror(errno)))")
        }
        TestCrash.event()
        guard rename(staging.path, destination.path) == 0 else {
            throw OutputError("cannot move \(staging.path) to \(destination.path): \(String(cString: strerror(errno)))")
        }
        TestCrash.event()
        try? FileManager.default.removeItem(at: aside)
        TestCrash.event()
    }

    /// `renameat2`, looked up at run time (glibc 2.28 and later; its header hides it behind `_GNU_SOURCE`).
    private static let exchange: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32)? = {
        #if os(Linux)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32).self)
        #else
        return nil
        #endif
    }()

    /// Throws unless `destination` may be written: absent, an empty folder, or (with `overwrite`)
    /// a folder this program wrote.
    static func checkDestination(_ destination: URL, overwrite: Bool) throws {
        var info = stat()
        guard lstat(destination.path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw OutputError("\(destination.path) exists and is not a folder; choose another --out")
        }
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: destination.path)) ?? []
        if contents.isEmpty { return }
        guard contents.contains(ManifestHeader.fileName), (try? ManifestHeader.read(destination)) != nil else {
            throw OutputError(
                "\(destination.path) already exists and was not written by shortcut-detect (no manifest.json); "
                    + "choose another --out or empty it first")
        }
        guard overwrite else {
            throw OutputError("\(destination.path) already holds results; pass --overwrite to replace them (the old ones stay until the new ones are complete)")
        }
    }

    /// A hidden path beside `destination` for this process, `.NAME.MARKER-PID-RANDOM`, which
    /// ``removeAbandoned(in:name:)`` recognizes once the process is gone.
    static func hiddenSibling(of destination: URL, _ marker: String) -> URL {
        destination.deletingLastPathComponent()
            .appendingPathComponent(".\(destination.lastPathComponent).\(marker)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    }

    /// Removes staging and moved-aside folders for `name` left by processes that no longer run.
    static func removeAbandoned(in parent: URL, name: String) {
        guard let siblings = try? FileManager.default.contentsOfDirectory(atPath: parent.path) else { return }
        for sibling in siblings {
            for marker in [".\(name).partial-", ".\(name).old-"] where sibling.hasPrefix(marker) {
                let rest = sibling.dropFirst(marker.count)
                guard let pid = rest.split(separator: "-").first.flatMap({ Int32($0) }), pid > 0 else { continue }
                if pid != getpid(), kill(pid, 0) != 0, errno == ESRCH {
                    try? FileManager.default.removeItem(at: parent.appendingPathComponent(sibling))
                }
            }
        }
    }
}

/// A single file that appears whole or not at all: written beside its destination under a hidden
/// name, then renamed over it (removed instead when the run is interrupted).
public final class OutputFile: @unchecked Sendable {
    /// The file's final path.
    public let destination: URL
    private let staging: URL
    private let sink: FileSink
    private var finished = false

    /// Starts writing the file that will become `destination`.
    public init(_ destination: URL) throws {
        self.destination = destination.standardizedFileURL
        let parent = self.destination.deletingLastPathComponent()
        OutputFolder.removeAbandoned(in: parent, name: self.destination.lastPathComponent)
        Interrupts.shared.install()
        let staging = OutputFolder.hiddenSibling(of: self.destination, "partial")
        self.staging = staging
        let name = self.destination.lastPathComponent
        sink = try Interrupts.shared.register(staging) { try FileSink(staging, name: name) }
    }

    deinit { if !finished { discard() } }

    /// Appends bytes.
    public func append(raw: UnsafeRawBufferPointer) throws { try sink.append(raw: raw) }
    /// Appends the bytes of `data`.
    public func append<Bytes: ContiguousBytes>(_ data: Bytes) throws { try sink.append(data) }

    /// Moves the file into place.
    public func commit() throws {
        _ = try sink.closeFile()
        TestCrash.event()
        try Interrupts.shared.withLock {
            guard rename(staging.path, destination.path) == 0 else {
                throw OutputError("cannot move \(staging.path) to \(destination.path): \(String(cString: strerror(errno)))")
            }
            finished = true
            Interrupts.shared.unregister(staging)
        }
        TestCrash.event()
    }

    /// Removes the partial file: the destination is left as it was.
    public func discard() {
        Interrupts.shared.withLock {
            finished = true
            Interrupts.shared.unregister(staging)
            unlink(staging.path)
        }
    }
}

/// One file as a manifest lists it.
public struct ManifestEntry: Codable, Sendable, Equatable {
    /// The path inside the folder, `/`-separated.
    public let path: String
    /// The file's size in bytes.
    public let bytes: Int
    /// Lowercase hexadecimal.
    public let sha256: String

    /// An entry from its parts.
    public init(path: String, bytes: Int, sha256: String) {
        self.path = path
        self.bytes = bytes
        self.sha256 = sha256
    }

    /// The entry of the file at `file`, read and hashed now.
    public init(file: URL, path: String) throws {
        let fd: Int32
        do { fd = try FileIO.openRegular(file.path).fd } catch let error as FileError {
            throw OutputError("cannot read \(file.path): \(error.reason)")
        }
        defer { close(fd) }
        var hash = SHA256()
        var total = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count >= 0 else { throw OutputError("cannot read \(file.path): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            buffer.withUnsafeBytes { hash.update(raw: UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
            total += count
        }
        self.init(path: path, bytes: total, sha256: hash.hexDigest())
    }
}

/// `manifest.json`: what a results folder holds and how it was made.
public struct Manifest<Configuration: Codable>: Codable {
    /// The manifest's name inside its folder.
    public static var fileName: String { "manifest.json" }
    /// Always ``ManifestHeader/formatName``.
    public var format: String = ManifestHeader.formatName
    /// The manifest format version it was written in.
    public var formatVersion: Int = ManifestHeader.formatVersion
    /// What wrote the folder: `audit`, `gradcam`, `detect`, ...
    public var kind: String
    /// The program and version that wrote it.
    public var producer: String
    /// The settings of the run, as its kind records them.
    public var configuration: Configuration
    /// Every other file of the folder, sorted by path.
    public var files: [ManifestEntry]

    /// A manifest from its parts.
    public init(kind: String, producer: String, configuration: Configuration, files: [ManifestEntry]) {
        self.kind = kind
        self.producer = producer
        self.configuration = configuration
        self.files = files
    }
}

/// The part of a manifest every kind shares, and the checks a reader runs.
public struct ManifestHeader: Codable, Sendable {
    /// The manifest's name inside its folder.
    public static let fileName = "manifest.json"
    /// The `format` every manifest names.
    public static let formatName = "shortcut-detect results"
    /// The manifest format this version writes and reads.
    public static let formatVersion = 1
    /// Must be ``formatName``.
    public let format: String
    /// Must be at most the version this build reads (the static `formatVersion`).
    public let formatVersion: Int
    /// What wrote the folder.
    public let kind: String
    /// The program and version that wrote it.
    public let producer: String
    /// Every other file of the folder, sorted by path.
    public let files: [ManifestEntry]

    /// Reads `folder/manifest.json` (without checking the files).
    public static func read(_ folder: URL) throws -> ManifestHeader {
        let url = folder.appendingPathComponent(fileName)
        let data: Data
        do { data = try FileIO.data(of: url.path) } catch let error as FileError {
            throw OutputError("\(folder.path) is not a complete folder of shortcut-detect results: its manifest.json cannot be read (\(error.reason))")
        }
        guard let header = try? JSONDecoder().decode(ManifestHeader.self, from: data), header.format == formatName else {
            throw OutputError("\(url.path) is not a shortcut-detect manifest")
        }
        guard header.formatVersion == formatVersion else {
            throw OutputError("\(url.path) has format version \(header.formatVersion); this program reads version \(formatVersion)")
        }
        return header
    }

    /// Reads the manifest of `folder` and checks it against the folder: every listed file is a
    /// regular file of exactly the listed size and SHA-256, and nothing else is there.
    public static func verify(_ folder: URL, kind: String) throws -> ManifestHeader {
        let header = try read(folder)
        guard header.kind == kind else { throw OutputError("\(folder.path) holds \(header.kind) results, not \(kind) results") }
        var listed: [String: ManifestEntry] = [:]
        for entry in header.files {
            let parts = entry.path.split(separator: "/", omittingEmptySubsequences: false)
            guard !entry.path.isEmpty, !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }), entry.path != fileName,
                listed.updateValue(entry, forKey: entry.path) == nil
            else { throw OutputError("\(folder.path)/manifest.json lists the path '\(entry.path)' improperly or twice") }
        }
        for path in try regularFiles(in: folder) where path != fileName && listed[path] == nil {
            throw OutputError("\(folder.path)/\(path) is not listed in the manifest: the folder was changed after it was written")
        }
        for entry in header.files {
            let file = folder.appendingPathComponent(entry.path)
            var info = stat()
            guard lstat(file.path, &info) == 0 else { throw OutputError("\(file.path) is listed in the manifest but missing") }
            guard (info.st_mode & S_IFMT) == S_IFREG else { throw OutputError("\(file.path) is not a regular file") }
            guard Int(info.st_size) == entry.bytes else {
                throw OutputError("\(file.path) has \(info.st_size) bytes; the manifest says \(entry.bytes)")
            }
            guard try ManifestEntry(file: file, path: entry.path).sha256 == entry.sha256 else {
                throw OutputError("\(file.path) does not match its SHA-256 in the manifest: it was changed or damaged")
            }
        }
        return header
    }

    /// Paths of everything under `folder` that is not a folder, relative to it; symbolic links
    /// and other special files are refused.
    static func regularFiles(in folder: URL) throws -> [String] {
        guard let names = FileManager.default.enumerator(atPath: folder.path) else {
            throw OutputError("cannot list \(folder.path)")
        }
        var files: [String] = []
        while let name = names.nextObject() as? String {
            var info = stat()
            guard lstat(folder.appendingPathComponent(name).path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: continue
            case S_IFREG: files.append(name)
            default: throw OutputError("\(folder.path)/\(name) is not a regular file or folder")
            }
        }
        return files
    }
}

/// A file appended to in pieces, hashed as it is written.
public final class FileSink: @unchecked Sendable {
    private let fd: Int32
    private let url: URL
    private let name: String
    private var hash = SHA256()
    private var count = 0
    private var buffer: [UInt8] = []
    private var closed = false

    init(_ url: URL, name: String) throws {
        self.url = url
        self.name = name
        fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw OutputError("cannot create \(url.path): \(String(cString: strerror(errno)))")
        }
        buffer.reserveCapacity(1 << 20)
    }

    deinit { if !closed { _ = closeDescriptor(fd) } }

    /// Bytes written so far.
    public var bytes: Int { count }

    /// Appends bytes.
    public func append<Bytes: ContiguousBytes>(_ data: Bytes) throws { try data.withUnsafeBytes { try append(raw: $0) } }

    /// Appends the bytes of float32 values.
    public func append(floats: [Float]) throws { try floats.withUnsafeBytes { try append(raw: $0) } }

    /// Appends bytes.
    public func append(raw: UnsafeRawBufferPointer) throws {
        hash.update(raw: raw)
        count += raw.count
        if buffer.count + raw.count > buffer.capacity { try flush() }
        if raw.count >= buffer.capacity { try writeAll(raw) } else { buffer.append(contentsOf: raw) }
    }

    private func flush() throws {
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ raw: UnsafeRawBufferPointer) throws {
        guard let base = raw.baseAddress else { return }
        var offset = 0
        while offset < raw.count {
            let written = write(fd, base + offset, raw.count - offset)
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                throw OutputError("cannot write \(url.path): \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// Flushes and closes the file; returns its manifest entry.
    func closeFile() throws -> ManifestEntry {
        try flush()
        closed = true
        guard closeDescriptor(fd) == 0 else { throw OutputError("cannot write \(url.path): \(String(cString: strerror(errno)))") }
        return ManifestEntry(path: name, bytes: count, sha256: hash.hexDigest())
    }
}

private func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }

/// A results folder that could not be prepared, written, moved into place or verified.
public struct OutputError: Error, CustomStringConvertible, Equatable {
    /// What went wrong, naming the file or folder.
    public let description: String
    /// An error that says `description`.
    public init(_ description: String) { self.description = description }
}

/// Removes the staging folders of an interrupted run, then ends it as the signal would have.
final class Interrupts: @unchecked Sendable {
    static let shared = Interrupts()
    private let lock = NSRecursiveLock()
    private var active: Set<String> = []
    private var sources: [DispatchSourceSignal] = []

    /// Installs the handlers of SIGINT, SIGTERM and SIGHUP once, and returns when they are live.
    ///
    /// Dispatch registers a signal source on its own thread, after `resume()`: until then a signal
    /// gets its old disposition. Callers install before they create anything to clean up, so a
    /// signal in that window ends the process by its default action with nothing left behind.
    /// On Linux the source installs its own handler; on Darwin (kqueue) the signal must be ignored
    /// for the source to see it instead of the default action ending the process.
    func install() {
        lock.withLock {
            guard sources.isEmpty else { return }
            let registered = DispatchGroup()
            for signalNumber in [SIGINT, SIGTERM, SIGHUP] {
                #if canImport(Darwin)
                signal(signalNumber, SIG_IGN)
                #endif
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
                source.setEventHandler { [unowned self] in self.interrupted(signalNumber) }
                registered.enter()
                source.setRegistrationHandler { registered.leave() }
                source.resume()
                sources.append(source)
            }
            _ = registered.wait(timeout: .now() + 10)
            // A run that ends in an error exits (ArgumentParser calls exit) while other threads may
            // still hold the folder being written; what was not committed goes too.
            atexit { Interrupts.shared.removeActive() }
        }
    }

    /// Creates `staging` with `create` and registers it for removal when the process is
    /// interrupted, both under the lock (see ``install()``, which must come first): a signal
    /// between the two would find the path but not know to remove it.
    func register<R>(_ staging: URL, creating create: () throws -> R) rethrows -> R {
        install()
        return try lock.withLock {
            let created = try create()
            active.insert(staging.path)
            return created
        }
    }

    func unregister(_ staging: URL) { lock.withLock { _ = active.remove(staging.path) } }

    /// Runs `body` with no interruption cleaning up at the same time.
    func withLock<R>(_ body: () throws -> R) rethrows -> R { try lock.withLock(body) }

    private func interrupted(_ signalNumber: Int32) {
        lock.lock()
        removeActive()
        _exit(128 + signalNumber)
    }

    /// Removes every staging folder and file not committed.
    private func removeActive() {
        lock.withLock {
            for path in active {
                // Renamed first, so a writer still running cannot add to a folder being removed.
                let trash = path + ".removing"
                if rename(path, trash) == 0 { try? FileManager.default.removeItem(atPath: trash) }
            }
            active.removeAll()
        }
    }
}

/// A test hook: `SHORTCUT_DETECT_TEST_KILL_AFTER=N` kills the process (SIGKILL, no cleanup) at
/// the N-th step of writing results (each file finished, the manifest, each rename), and
/// `SHORTCUT_DETECT_TEST_INTERRUPT_AFTER=N` sends it SIGINT there (as a user's Ctrl-C would),
/// then waits for the handler, to check that a crash or an interruption at any point leaves the
/// previous results or the new ones, complete, and never a mix.
enum TestCrash {
    private static let environment = ProcessInfo.processInfo.environment
    private static let killAt: Int? = environment["SHORTCUT_DETECT_TEST_KILL_AFTER"].flatMap { Int($0) }
    private static let interruptAt: Int? = environment["SHORTCUT_DETECT_TEST_INTERRUPT_AFTER"].flatMap { Int($0) }
    private static let counter = Counter()

    static func event() {
        guard killAt != nil || interruptAt != nil else { return }
        let count = counter.increment()
        if let killAt, count >= killAt { kill(getpid(), SIGKILL) }
        if let interruptAt, count == interruptAt {
            // Said first: a signal that lands once the new folder is in place may lose the race
            // with the normal exit, and the test must still know this step was reached.
            FileHandle.standardError.write(Data("test hook: SIGINT at step \(count)\n".utf8))
            kill(getpid(), SIGINT)
            // The handler runs on another thread and ends the process; it waits while this thread
            // holds the interruption lock (moving a folder into place), and then this thread goes on.
            usleep(2_000_000)
        }
    }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func increment() -> Int { lock.withLock { value += 1; return value } }
    }
}

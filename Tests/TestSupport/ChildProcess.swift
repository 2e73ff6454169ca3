import Foundation
import TensorCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A program run to its end: exit status, output, and the peak of its resident memory.
///
/// Foundation's `Process` reaps the child itself and keeps its resource usage; here the child is
/// started with `posix_spawn` and reaped with `wait4`, whose `rusage` holds that child's own
/// maximum resident set size (not the largest of all children, as `RUSAGE_CHILDREN` would).
///
/// On Linux that maximum also covers the address space the child had before `exec`, which is
/// this process's: unless it exceeds this process's own peak, `ru_maxrss` says nothing about the
/// child (a sanitizer build of the suite holds gigabytes). The child's own high-water mark
/// (`VmHWM`, per address space) is then used, read from `/proc` every millisecond while it runs,
/// which can miss only a peak reached in its last millisecond.
public struct ChildProcess: Sendable {
    /// The exit code, or 128 + the signal that ended it.
    public let status: Int32
    public let stdout: String
    public let stderr: String
    /// The child's maximum resident set size, in bytes.
    public let peakResidentBytes: Int
    /// Whether the watchdog ended it.
    public let timedOut: Bool

    /// Runs `executable` with `arguments` and `environment` added to this process's; after
    /// `timeout` seconds the child is killed. `whileRunning`, when given, is called on another
    /// thread with the child's process id as soon as it started (to signal it, for instance).
    public static func run(
        _ executable: URL, _ arguments: [String], timeout: Double = 120, environment: [String: String] = [:],
        whileRunning: (@Sendable (pid_t) -> Void)? = nil
    ) throws -> ChildProcess {
        let folder = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let outPath = folder.appendingPathComponent("stdout").path
        let errPath = folder.appendingPathComponent("stderr").path

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0)=\($1)" }
        let envp = variables.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable.path, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw FileError(path: executable.path, reason: "cannot start it: \(String(cString: strerror(spawned)))")
        }

        // One monitor on a thread of its own (parallel tests can keep every thread of Dispatch's pool
        // waiting, and work queued there may start only after the child is gone). Every millisecond
        // it reads the child's memory high-water mark (posix_spawn returns once the child has
        // exec'd, so /proc shows its own address space); after `timeout` it kills the child, so a
        // hang (a FIFO that blocks) fails the test instead of stalling the suite.
        let (sampled, killed, reaped, monitor) = (ManagedMaximum(), ManagedFlag(), ManagedFlag(), DispatchSemaphore(value: 0))
        let child = pid
        let deadline = DispatchTime.now() + timeout
        Thread {
            while !reaped.value {
                if let bytes = highWaterMark(of: "\(child)") { sampled.record(bytes) }
                if !killed.value, DispatchTime.now() >= deadline {
                    killed.set()
                    kill(child, SIGKILL)
                }
                usleep(1_000)
            }
            monitor.signal()
        }.start()
        if let whileRunning { DispatchQueue.global().async { whileRunning(child) } }
        var raw: Int32 = 0
        var usage = rusage()
        while wait4(pid, &raw, 0, &usage) < 0 && errno == EINTR {}
        reaped.set()
        monitor.wait()

        let signal = raw & 0x7f
        let status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
        #if canImport(Darwin)
        let reported = Int(usage.ru_maxrss)  // bytes on Darwin
        #else
        let reported = Int(usage.ru_maxrss) * 1024  // kilobytes on Linux
        #endif
        // What this process held when the child exec'd is at most its peak now (read after the
        // wait: other tests' threads may have grown it meanwhile); above that, the child's own.
        let peak = reported > (highWaterMark(of: "self") ?? 0) ? reported : sampled.value
        func text(_ path: String) -> String {
            String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        }
        return ChildProcess(
            status: status, stdout: text(outPath), stderr: text(errPath), peakResidentBytes: peak, timedOut: killed.value)
    }
}

/// The high-water mark of a process's resident memory (`VmHWM`, bytes) from `/proc/<pid>/status`,
/// or `nil` where there is none (not Linux, or the process is gone).
private func highWaterMark(of process: String) -> Int? {
    MemoryBudget.procKilobytes("VmHWM", in: "/proc/\(process)/status")
}

/// The largest value any thread recorded.
private final class ManagedMaximum: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = 0
    func record(_ value: Int) { lock.withLock { stored = max(stored, value) } }
    var value: Int { lock.withLock { stored } }
}

/// A flag one thread sets and another reads.
private final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = false
    func set() { lock.withLock { stored = true } }
    var value: Bool { lock.withLock { stored } }
}

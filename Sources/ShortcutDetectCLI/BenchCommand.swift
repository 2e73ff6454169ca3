import ArgumentParser
import Foundation
import ShortcutDetect

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `shortcut-detect bench`: times forward passes (or GradCAM) on one input and prints one JSON line.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time forward passes, or GradCAM when --layer is given; prints one JSON line.",
        discussion: "Fields: median_ms, min_ms, runs, threads, peak_rss_mb, load_ms (decoding the file and building the executor or generator), decode_ms (its decoding part), kernels (the kernel level: avx512, avx2 or portable; SHORTCUT_DETECT_KERNELS forces one) and blas_core (the core OpenBLAS chose, or null). The first run is a warm-up and not counted.")

    @Argument(help: "The .onnx model file.")
    var model: String

    @Option(help: ArgumentHelp("The input batch as a float32 .npy; - for standard input.", valueName: "PATH"))
    var input: String

    @Option(help: ArgumentHelp("Time GradCAM at this layer instead of a forward pass.", valueName: "LAYER"))
    var layer: String?

    @Option(help: ArgumentHelp("CAM method for --layer.", valueName: "NAME"))
    var method: CAMMethodName = .gradcam

    @Option(help: ArgumentHelp("Timed runs after the warm-up.", valueName: "N"))
    var runs: Int = 10

    @Option(help: ArgumentHelp("Threads the kernels run on.", valueName: "T"))
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "After the timing, print each op type's share of a forward pass to standard error (each step's best of three); with --layer, of the forward and the backward steps of a reverse pass, and what the maps cost beyond it. With --verbose, every step in run order, not only the slowest.")
    var profile = false

    @Flag(name: .customLong("no-fold"), help: "Forward only: build the executor without constant folding (what folding costs at load, saves per run).")
    var noFold = false

    @OptionGroup var resources: ResourceOptions

    @OptionGroup var console: ConsoleOptions

    func validate() throws {
        try FlagCheck.count(runs, "--runs")
        try FlagCheck.count(threads, "--threads")
        try StandardStreams.check(inputs: [("--input", input)], outputs: [])
        if noFold && layer != nil { throw ValidationError("--no-fold times forward passes; drop --layer") }
    }

    func run() throws {
        BLAS.setThreads(threads)
        let images = try StandardStreams.readNPY(input, flag: "--input")
        let loadStart = DispatchTime.now()
        let loaded = try Model(contentsOf: URL(fileURLWithPath: model))
        let decoded = DispatchTime.now()
        let job: () throws -> Void
        var generator: GradCAMHeatmapGenerator?
        if let layer {
            let explainer = try GradCAMHeatmapGenerator(model: loaded, targetLayer: layer, method: method.camMethod ?? .gradCAM)
            generator = explainer
            job = { _ = try explainer.explain(images) }
        } else {
            let executor = try Executor(model: loaded, foldConstants: !noFold)
            let name = executor.inputs.first?.name ?? "input"
            job = { _ = try executor.run([name: images]) }
        }
        let loadMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e6
        try job()
        var times: [Double] = []
        for _ in 0..<max(runs, 1) {
            let start = DispatchTime.now()
            try job()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6)
        }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let usage = processUsage()
        #if canImport(Darwin)
        let peak = Double(usage.ru_maxrss) / 1_048_576
        #else
        let peak = Double(usage.ru_maxrss) / 1024
        #endif
        func fixed(_ x: Double) -> String { String(format: "%.3f", x) }
        defer {
            if profile {
                do {
                    if let generator { try printGradientProfile(generator, images) } else { try printProfile(URL(fileURLWithPath: model), images) }
                } catch {
                    FileHandle.standardError.write("profile failed: \(error)\n".data(using: .utf8) ?? Data())
                }
            }
        }
        // The JSON line is the data bench exists for: --quiet keeps it.
        let blasCore = BLAS.coreName.map { "\"\($0)\"" } ?? "null"
        print("{\"median_ms\": \(fixed(median)), \"min_ms\": \(fixed(times[0])), \"runs\": \(times.count), \"threads\": \(threads), \"peak_rss_mb\": \(fixed(peak)), \"load_ms\": \(fixed(loadMilliseconds)), \"decode_ms\": \(fixed(Double(decoded.uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e6)), \"kernels\": \"\(Kernels.current.level)\", \"blas_core\": \(blasCore)}")
    }

    /// Per op type: milliseconds, share and node count of one forward pass, slowest first.
    private func printProfile(_ url: URL, _ images: Tensor) throws {
        let executor = try Executor(model: try Model(contentsOf: url), foldConstants: !noFold)
        let name = executor.inputs.first?.name ?? "input"
        _ = try executor.profile([name: images])  // warm-up
        printTable(Self.fastest(try (0..<3).map { _ in try executor.profile([name: images]) }))
    }

    /// One step's time in a profile table.
    private struct Timing {
        let node, opType: String
        let wall, cpu: Double
    }

    /// Each step's fastest wall and processor times over several profiles of the same run (on a
    /// shared machine the slowest runs say more about the neighbours than about the step).
    private static func fastest(_ runs: [[Executor.StepTiming]]) -> [Timing] {
        guard let first = runs.first else { return [] }
        var best = first.map { Timing(node: $0.node, opType: $0.opType, wall: $0.milliseconds, cpu: $0.processorMilliseconds) }
        for run in runs.dropFirst() where run.count == best.count {
            best = zip(best, run).map {
                Timing(node: $0.node, opType: $0.opType, wall: min($0.wall, $1.milliseconds), cpu: min($0.cpu, $1.processorMilliseconds))
            }
        }
        return best
    }

    /// The forward and backward steps of a reverse pass to the generator's layers, per op type,
    /// then the best of three of a forward pass, the reverse pass and the whole explanation (the
    /// reverse pass and the maps: reading the layer, weighting, resizing, scaling).
    private func printGradientProfile(_ generator: GradCAMHeatmapGenerator, _ images: Tensor) throws {
        let executor = generator.executor
        let feeds = [executor.inputs.first?.name ?? "input": images]
        let wrt = generator.layers.map(\.tensor)
        let reverse = { try executor.gradients(feeds, of: .logit(classes: nil), output: generator.outputName, wrt: wrt) }
        let profiles = try (0..<3).map { _ in
            try executor.profileGradients(
                feeds, seed: { try GradientTarget.logit(classes: nil).seed(for: $0) }, output: generator.outputName, wrt: wrt)
        }
        FileHandle.standardError.write("forward steps of the reverse pass:\n".data(using: .utf8) ?? Data())
        printTable(Self.fastest(profiles.map(\.forward)))
        FileHandle.standardError.write("backward steps:\n".data(using: .utf8) ?? Data())
        printTable(Self.fastest(profiles.map(\.backward)))
        // Wall and processor time (all threads), each the best of three alternating runs: on a
        // shared machine the processor time is the steadier measure of work.
        let jobs: [(String, () throws -> Void)] = [
            ("forward", { _ = try executor.run(feeds, fetch: [generator.outputName]) }), ("reverse pass", { _ = try reverse() }),
            ("explain", { _ = try generator.explain(images) }),
        ]
        var best = [(wall: Double, cpu: Double)](repeating: (.infinity, .infinity), count: jobs.count)
        for _ in 0..<3 {
            for (index, job) in jobs.enumerated() {
                let time = try timed(job.1)
                best[index] = (min(best[index].wall, time.wall), min(best[index].cpu, time.cpu))
            }
        }
        var line = "best of 3, wall ms (processor ms):"
        for (index, job) in jobs.enumerated() { line += " \(job.0)" + String(format: " %.2f (%.2f);", best[index].wall, best[index].cpu) }
        line += String(
            format: " explain / forward %.3f (%.3f)\n", best[2].wall / best[0].wall, best[2].cpu / best[0].cpu)
        FileHandle.standardError.write(line.data(using: .utf8) ?? Data())
    }

    /// Wall-clock and processor milliseconds (user and system, all threads) of `job`.
    private func timed(_ job: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
        func processor() -> Double {
            let usage = processUsage()
            func milliseconds(_ t: timeval) -> Double { Double(t.tv_sec) * 1e3 + Double(t.tv_usec) / 1e3 }
            return milliseconds(usage.ru_utime) + milliseconds(usage.ru_stime)
        }
        let (start, cpu) = (DispatchTime.now().uptimeNanoseconds, processor())
        try job()
        return (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6, processor() - cpu)
    }

    /// Wall and processor milliseconds, share (of the processor time) and step count per op type,
    /// slowest first, then the slowest steps (with `--verbose`, every step in run order), on
    /// standard error.
    private func printTable(_ timings: [Timing]) {
        let total = timings.reduce((wall: 0.0, cpu: 0.0)) { ($0.wall + $1.wall, $0.cpu + $1.cpu) }
        var byType: [String: (wall: Double, cpu: Double, count: Int)] = [:]
        for timing in timings {
            let entry = byType[timing.opType, default: (0, 0, 0)]
            byType[timing.opType] = (entry.wall + timing.wall, entry.cpu + timing.cpu, entry.count + 1)
        }
        func row(_ op: String, _ columns: [String]) -> String {
            op.padding(toLength: max(28, op.count), withPad: " ", startingAt: 0)
                + columns.map { String(repeating: " ", count: max(0, 10 - $0.count)) + $0 }.joined()
        }
        var lines = [row("op", ["ms", "cpu ms", "share", "nodes"])]
        for (type, entry) in byType.sorted(by: { $0.value.cpu > $1.value.cpu }) {
            lines.append(row(type, [
                String(format: "%.2f", entry.wall), String(format: "%.2f", entry.cpu),
                String(format: "%.1f%%", 100 * entry.cpu / max(total.cpu, 1e-9)), "\(entry.count)",
            ]))
        }
        lines.append(row("total", [String(format: "%.2f", total.wall), String(format: "%.2f", total.cpu), "", ""]))
        let everyStep = Console.level == .verbose
        lines.append(everyStep ? "every step, in run order (cpu ms, wall ms):" : "slowest steps (cpu ms, wall ms):")
        for timing in everyStep ? timings : Array(timings.sorted(by: { $0.cpu > $1.cpu }).prefix(8)) {
            lines.append(
                String(format: "%10.2f%10.2f  ", timing.cpu, timing.wall) + timing.opType
                    + (timing.node.isEmpty ? "" : "  " + timing.node))
        }
        FileHandle.standardError.write((lines.joined(separator: "\n") + "\n").data(using: .utf8) ?? Data())
    }
}

/// This process's resource usage (all threads), as `getrusage(RUSAGE_SELF)` reports it.
private func processUsage() -> rusage {
    var usage = rusage()
    #if canImport(Glibc)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return usage
}

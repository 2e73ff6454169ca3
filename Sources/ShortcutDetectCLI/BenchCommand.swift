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

    @Option(help: ArgumentHelp("The input batch as a float32 .npy.", valueName: "PATH"))
    var input: String

    @Option(help: ArgumentHelp("Time GradCAM at this layer instead of a forward pass.", valueName: "LAYER"))
    var layer: String?

    @Option(help: ArgumentHelp("CAM method for --layer.", valueName: "NAME"))
    var method: CAMMethodName = .gradcam

    @Option(help: ArgumentHelp("Timed runs after the warm-up.", valueName: "N"))
    var runs: Int = 10

    @Option(help: ArgumentHelp("Threads for BLAS.", valueName: "T"))
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "After the timing, print each op type's share of one more forward pass to standard error.")
    var profile = false

    @Flag(name: .customLong("no-fold"), help: "Forward only: build the executor without constant folding (what folding costs at load, saves per run).")
    var noFold = false

    @OptionGroup var resources: ResourceOptions

    func validate() throws {
        try FlagCheck.count(runs, "--runs")
        try FlagCheck.count(threads, "--threads")
        if noFold && layer != nil { throw ValidationError("--no-fold times forward passes; drop --layer") }
    }

    func run() throws {
        BLAS.setThreads(threads)
        let images = try Tensor(npyAt: URL(fileURLWithPath: input))
        let loadStart = DispatchTime.now()
        let loaded = try Model(contentsOf: URL(fileURLWithPath: model))
        let decoded = DispatchTime.now()
        let job: () throws -> Void
        if let layer {
            let generator = try GradCAMHeatmapGenerator(model: loaded, targetLayer: layer, method: method.camMethod ?? .gradCAM)
            job = { _ = try generator.explain(images) }
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
        var usage = rusage()
        #if canImport(Glibc)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        #if canImport(Darwin)
        let peak = Double(usage.ru_maxrss) / 1_048_576
        #else
        let peak = Double(usage.ru_maxrss) / 1024
        #endif
        func fixed(_ x: Double) -> String { String(format: "%.3f", x) }
        defer { if profile { try? printProfile(URL(fileURLWithPath: model), images) } }
        let blasCore = BLAS.coreName.map { "\"\($0)\"" } ?? "null"
        print("{\"median_ms\": \(fixed(median)), \"min_ms\": \(fixed(times[0])), \"runs\": \(times.count), \"threads\": \(threads), \"peak_rss_mb\": \(fixed(peak)), \"load_ms\": \(fixed(loadMilliseconds)), \"decode_ms\": \(fixed(Double(decoded.uptimeNanoseconds - loadStart.uptimeNanoseconds) / 1e6)), \"kernels\": \"\(Kernels.current.level)\", \"blas_core\": \(blasCore)}")
    }

    /// Per op type: milliseconds, share and node count of one forward pass, slowest first.
    private func printProfile(_ url: URL, _ images: Tensor) throws {
        let executor = try Executor(model: try Model(contentsOf: url), foldConstants: !noFold)
        let name = executor.inputs.first?.name ?? "input"
        _ = try executor.profile([name: images])  // warm-up
        let timings = try executor.profile([name: images])
        let total = timings.reduce(0) { $0 + $1.milliseconds }
        var byType: [String: (ms: Double, count: Int)] = [:]
        for timing in timings { byType[timing.opType, default: (0, 0)].ms += timing.milliseconds; byType[timing.opType]?.count += 1 }
        func row(_ op: String, _ ms: String, _ share: String, _ nodes: String) -> String {
            op.padding(toLength: max(28, op.count), withPad: " ", startingAt: 0)
                + [ms, share, nodes].map { String(repeating: " ", count: max(0, 10 - $0.count)) + $0 }.joined()
        }
        var lines = [row("op", "ms", "share", "nodes")]
        for (type, entry) in byType.sorted(by: { $0.value.ms > $1.value.ms }) {
            lines.append(row(
                type, String(format: "%.2f", entry.ms), String(format: "%.1f%%", 100 * entry.ms / max(total, 1e-9)),
                "\(entry.count)"))
        }
        lines.append(row("total", String(format: "%.2f", total), "", ""))
        FileHandle.standardError.write((lines.joined(separator: "\n") + "\n").data(using: .utf8) ?? Data())
    }
}

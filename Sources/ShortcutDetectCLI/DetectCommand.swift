import ArgumentParser
import Foundation
import ShortcutDetect

/// `shortcut-detect detect`: embedding-based shortcut detection on saved embeddings.
struct DetectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Does an embedding encode the protected group? Probes, statistics, clustering and geometry.",
        discussion: """
            G.csv is read by header name: 'group' (required), 'label' and 'file' (optional), other columns \
            ignored. With a 'file' column and E.files.txt beside E.npy (as `embed` writes it), rows are matched \
            by file; otherwise (and with --embeddings -, standard input) by position. With labels, HBAC \
            clusters by them (as the reference does); the other methods read the groups. OUT gets detect.json \
            and report.html.
            """)

    @Option(help: ArgumentHelp("Embeddings, a float [N, D] .npy file (e.g. from `embed`); - for standard input.", valueName: "E.npy"))
    var embeddings: String

    @Option(help: ArgumentHelp("CSV with a 'group' column, optionally 'label' and 'file'.", valueName: "G.csv"))
    var groups: String

    @Option(help: ArgumentHelp("Comma-separated methods: probe, statistical, hbac, geometric.", valueName: "LIST"))
    var methods: String = DetectionMethod.allCases.map(\.rawValue).joined(separator: ",")

    @Option(help: ArgumentHelp("Seed of the holdout splits and k-means.", valueName: "S"))
    var seed: UInt32 = 42

    @Option(help: ArgumentHelp("The output folder.", valueName: "DIR"))
    var out: String

    @Flag(help: "Replace the results already in DIR (they stay until the new ones are complete).")
    var overwrite = false

    @OptionGroup var resources: ResourceOptions

    @OptionGroup var console: ConsoleOptions

    func validate() throws {
        _ = try parsedMethods()
        try FlagCheck.outputsSpareInputs([("--out", out)], inputs: [("--embeddings", embeddings), ("--groups", groups)])
        try StandardStreams.check(inputs: [("--embeddings", embeddings)], outputs: [])
    }

    func parsedMethods() throws -> [DetectionMethod] {
        let names = methods.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let parsed = try names.map { name -> DetectionMethod in
            guard let method = DetectionMethod(rawValue: name) else {
                throw ValidationError("unknown method '\(name)' in --methods; choose from \(DetectionMethod.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return method
        }
        guard !parsed.isEmpty else { throw ValidationError("--methods names no method") }
        return parsed
    }

    func run() throws {
        let matrix = try StandardStreams.readNPY(embeddings, flag: "--embeddings")
        guard matrix.rank == 2 else { throw CommandFailure(description: "\(embeddings) holds a \(matrix.shape) array; detect needs [N, D]") }
        let table = try GroupTable.read(csv: URL(fileURLWithPath: groups))
        let list = URL(fileURLWithPath: embeddings).deletingPathExtension().appendingPathExtension("files.txt")
        let files = embeddings != StandardStreams.dash && FileManager.default.fileExists(atPath: list.path)
            ? try FileIO.text(of: list.path).split(whereSeparator: \.isNewline).map(String.init) : nil
        let (groupNames, labels) = try table.aligned(count: matrix.shape[0], files: table.hasFiles ? files : nil)

        let output = try OutputFolder(URL(fileURLWithPath: out), overwrite: overwrite)
        let detector = ShortcutDetector(methods: try parsedMethods(), seed: seed)
        let report = try Console.timed("fitted the detectors") { try detector.fit(embeddings: matrix, groups: groupNames, labels: labels) }
        let folder = output.destination
        try output.write(report.json(), to: "detect.json")
        try output.write(Data(report.html().utf8), to: "report.html")
        let configuration = DetectRunConfiguration(
            embeddings: (embeddings as NSString).lastPathComponent, groups: (groups as NSString).lastPathComponent,
            methods: try parsedMethods().map(\.rawValue), seed: seed, n: report.n, dim: report.dim)
        try output.commit(kind: "detect", producer: producer, configuration: configuration)
        Console.say(report.summary)
        let matched = table.hasFiles && files != nil ? "matched by file" : "matched by position"
        Console.say("wrote detect.json and report.html for \(report.n) x \(report.dim) embeddings (\(matched)) to \(folder.path)")
    }
}

/// What a `detect` folder's manifest records about the run.
struct DetectRunConfiguration: Codable {
    var embeddings: String
    var groups: String
    var methods: [String]
    var seed: UInt32
    var n: Int
    var dim: Int
}

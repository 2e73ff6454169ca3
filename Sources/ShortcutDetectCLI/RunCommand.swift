import ArgumentParser
import Foundation
import ShortcutDetect

/// `shortcut-detect run`: one forward pass from `.npy` to `.npy`, with optional taps.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model forward on a NumPy input and save its output.",
        discussion: """
            The input may hold any batch size the model allows. Intermediate tensors can be saved too: \
            `shortcut-detect inspect MODEL --all-tensors` lists their names.
            """)

    @Argument(help: "The .onnx model file.")
    var model: String

    @Option(help: ArgumentHelp("The input as a float32 .npy file (- for standard input); NAME=PATH for a model with several inputs.", valueName: "PATH"))
    var input: [String]

    @Option(help: ArgumentHelp("Where to write the model's first output (.npy; - for standard output).", valueName: "PATH"))
    var output: String

    @Option(help: ArgumentHelp("Also save the intermediate tensor NAME to PATH (repeatable; one PATH may be - for standard output).", valueName: "NAME=PATH"))
    var tap: [String] = []

    @OptionGroup var resources: ResourceOptions

    @OptionGroup var console: ConsoleOptions

    func validate() throws {
        let inputs = [("model", model)] + input.map { ("--input", path(of: $0)) }
        let outputs = [("--output", output)] + tap.map { ("--tap", path(of: $0)) }
        try FlagCheck.outputsSpareInputs(outputs, inputs: inputs)
        try StandardStreams.check(inputs: input.map { ("--input", path(of: $0)) }, outputs: outputs)
    }

    func run() throws {
        let taps = try tap.map { try split($0, default: nil, option: "--tap") }
        if ([output] + taps.map(\.1)).contains(StandardStreams.dash) { Console.channel = .data }
        let loaded = try loadModel(model)
        let executor = try Console.timed("built the executor") { try Executor(model: loaded) }
        var feeds: [String: Tensor] = [:]
        for spec in input {
            let (name, path) = try split(spec, default: executor.inputs.first?.name, option: "--input")
            feeds[name] = try StandardStreams.readNPY(path, flag: "--input")
        }
        guard let outputName = executor.outputs.first?.name else { throw CommandFailure(description: "the model declares no outputs") }
        let results = try Console.timed("ran the forward pass") { try executor.run(feeds, fetch: [outputName] + taps.map(\.0)) }
        for (name, path) in [(outputName, output)] + taps {
            guard let tensor = results[name] else { continue }
            try StandardStreams.writeNPY(tensor, to: path)
            Console.say("wrote \(name) \(tensor.dtype)\(tensor.shape) to \(path == StandardStreams.dash ? "standard output" : path)")
        }
        if let logits = results[outputName], logits.rank == 2, logits.dtype == .float32 {
            let values = try logits.scalars(as: Float.self)
            let classes = logits.shape[1]
            let top = (0..<logits.shape[0]).map { row -> String in
                let slice = values[row * classes..<(row + 1) * classes]
                return String(slice.indices.max { slice[$0] < slice[$1] }.map { $0 - row * classes } ?? 0)
            }
            Console.say("argmax per sample: \(top.joined(separator: ", "))")
        }
    }

    /// The path of a `NAME=PATH` or bare `PATH` value.
    private func path(of spec: String) -> String {
        guard let equals = spec.lastIndex(of: "="), !FileManager.default.fileExists(atPath: spec) else { return spec }
        return String(spec[spec.index(after: equals)...])
    }

    /// Splits `NAME=PATH`; a bare `PATH` takes the default name when there is one.
    private func split(_ spec: String, default name: String?, option: String) throws -> (String, String) {
        if let equals = spec.lastIndex(of: "="), !FileManager.default.fileExists(atPath: spec) {
            return (String(spec[..<equals]), String(spec[spec.index(after: equals)...]))
        }
        guard let name else { throw ValidationError("\(option) expects NAME=PATH, got '\(spec)'") }
        return (name, spec)
    }
}

import ArgumentParser
import ShortcutDetect

/// The `shortcut-detect` command line: inspect and run exported ONNX image classifiers.
@main
struct ShortcutDetectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shortcut-detect",
        abstract: "See where an exported ONNX image classifier looks, without Python.",
        version: shortcutDetectVersion,
        subcommands: [InspectCommand.self, RunCommand.self, GradCAMCommand.self, AuditCommand.self, MergeCommand.self, EmbedCommand.self, DetectCommand.self, CompareHeadsCommand.self, BenchCommand.self])
}

/// The program and version, as the manifests of results folders name their producer.
let producer = "shortcut-detect \(shortcutDetectVersion)"

import ArgumentParser
import Foundation
import ShortcutDetect

/// The `shortcut-detect` command line: inspect and run exported ONNX image classifiers.
@main
struct ShortcutDetectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shortcut-detect",
        abstract: "See where an exported ONNX image classifier looks, without Python.",
        version: shortcutDetectVersion,
        subcommands: [InspectCommand.self, RunCommand.self, GradCAMCommand.self, AuditCommand.self, MergeCommand.self, EmbedCommand.self, DetectCommand.self, CompareHeadsCommand.self, BenchCommand.self])

    /// ArgumentParser's main, with every error in our own words (see ``CommandFailure``).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: CommandFailure.wrapping(error))
        }
    }
}

/// The program and version, as the manifests of results folders name their producer.
let producer = "shortcut-detect \(shortcutDetectVersion)"

/// A test hook: with `SHORTCUT_DETECT_REPORT_PASSES` set, a command prints on standard error how
/// many forward and reverse passes its executor ran, so tests can check one pass per batch.
func reportPasses(_ executor: Executor) {
    guard ProcessInfo.processInfo.environment["SHORTCUT_DETECT_REPORT_PASSES"] != nil else { return }
    FileHandle.standardError.write(Data("passes: forward \(executor.passes.forward), reverse \(executor.passes.reverse)\n".utf8))
}

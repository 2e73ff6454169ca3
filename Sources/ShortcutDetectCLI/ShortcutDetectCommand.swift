import ArgumentParser
import Foundation
import ShortcutDetect

/// The `shortcut-detect` command line: inspect and run exported ONNX image classifiers.
@main
struct ShortcutDetectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shortcut-detect",
        abstract: "See where an exported ONNX image classifier looks, without Python.",
        discussion: """
            Every command takes --quiet (print nothing but errors) and --verbose (timings and details on \
            standard error). Wherever a command takes a .npy file, - names standard input or output.

            Exit status: 0 on success; 1 when the work fails (a file that cannot be read or written, a model \
            or an image that cannot be used); 64 on a usage error (an unknown or missing option, a bad value, \
            options that do not go together), with the command's usage.
            """,
        version: shortcutDetectVersion,
        subcommands: [InspectCommand.self, RunCommand.self, GradCAMCommand.self, AuditCommand.self, MergeCommand.self, EmbedCommand.self, DetectCommand.self, CompareHeadsCommand.self, BenchCommand.self])

    /// ArgumentParser's main, with every error in our own words (see ``CommandFailure``) and a usage
    /// error found while running shown with the subcommand's usage, as one found while parsing is.
    static func main() {
        let started = DispatchTime.now()
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: CommandFailure.wrapping(error)) }
        do {
            try command.run()
            Console.detail("done in \(Console.milliseconds(since: started))")
        } catch let error as ValidationError {
            FileHandle.standardError.write(Data(usageError(error.message, in: type(of: command)).utf8))
            exit(withError: ExitCode.validationFailure)
        } catch {
            exit(withError: CommandFailure.wrapping(error))
        }
    }

    /// ArgumentParser's text for a usage error, with the usage of `command` instead of the root's.
    static func usageError(_ message: String, in command: ParsableCommand.Type) -> String {
        let usage = usageString(for: command).replacingOccurrences(of: "\n", with: "\n       ")
        let name = ([configuration.commandName ?? ""] + (command == self ? [] : [command.configuration.commandName ?? "\(command)"])).joined(separator: " ")
        return "Error: \(message)\nUsage: \(usage)\n  See '\(name) --help' for more information.\n"
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

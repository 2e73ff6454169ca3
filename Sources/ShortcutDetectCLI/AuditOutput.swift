import Foundation
import ShortcutDetect

/// What `audit` and `merge` print once the report is written.
enum AuditOutput {
    /// The summary sentence and `done`; with `--json`, one object instead: `report` (the folder),
    /// `images`, `shard` (`K/N`, or null for a whole audit) and `summary`, what the report's
    /// summary.json holds.
    static func finish(_ report: AuditReport, in folder: URL, json: Bool, images: Int, shard: String?, done: String) throws {
        guard json else {
            Console.say(report.summary)
            return Console.say(done)
        }
        let summary = try JSONSerialization.jsonObject(with: FileIO.data(of: folder.appendingPathComponent("summary.json").path))
        try Console.json(object: ["report": folder.path, "images": images, "shard": shard ?? NSNull(), "summary": summary])
    }
}

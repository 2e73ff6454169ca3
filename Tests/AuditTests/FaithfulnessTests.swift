import Foundation
import ShortcutDetect
import TestSupport
import Testing

@Suite struct FaithfulnessGoldenTests {
    @Test func metricsMatchPytorchGradCAMOnItsOwnMaps() throws {
        let goldens = try AuditGoldens.load()
        let rows = goldens.settings.cam_rows
        let x = try AuditGoldens.inputs(rows.map { goldens.files[$0] })
        for name in ["shortcut", "control"] {
            let reference = try #require(goldens.models[name])
            let cams = try Tensor(npyAt: Fixtures.url("audit/goldens/cams_\(name).npy"))
            let classes = rows.map { reference.default_path[$0].predicted }
            let metrics = Faithfulness(
                executor: try AuditGoldens.executor(name), output: "logits",
                options: FaithfulnessOptions(percentiles: goldens.settings.road_percentiles, seed: goldens.settings.seed, curves: false))
            let scores = try metrics.evaluate(x, heatmaps: cams, classes: classes, indices: rows)
            var worst: [String: Double] = [:]
            func note(_ key: String, _ a: Double, _ b: Double) { worst[key] = max(worst[key] ?? 0, abs(a - b)) }
            for (k, row) in rows.enumerated() {
                let g = reference.faithfulness[row]
                let s = scores[k]
                note("cam_mult", s.camMultConfidenceChange, g.cam_mult_confidence_change)
                note("drop", s.dropInConfidence, g.drop_in_confidence)
                note("increase", s.increaseInConfidence, g.increase_in_confidence)
                for (i, p) in goldens.settings.road_percentiles.enumerated() {
                    note("morf", s.roadMostRelevantFirst[i], g.road_most_relevant_first[String(p)] ?? .nan)
                    note("lerf", s.roadLeastRelevantFirst[i], g.road_least_relevant_first[String(p)] ?? .nan)
                }
                note("combined", s.roadCombined, g.road_combined)
                note("deletion", s.deletionAUC ?? .nan, g.deletion_auc)
                note("insertion", s.insertionAUC ?? .nan, g.insertion_auc)
            }
            print(name, worst.sorted { $0.key < $1.key })
        }
    }
}

@testable import Detectors
import Foundation
import TensorCore
import TestSupport
import Testing

/// The detectors against the reference, shortkit-ml 0.1.0, on the data sets of
/// tools/export_detector_goldens.py (Fixtures/detectors/<set>/).
@Suite struct ReferenceGoldenTests {
    static let sets = ["linear", "nonlinear", "multiclass", "none", "planted_shortcut", "planted_control"]

    struct GoldenSet {
        let x: Matrix
        let groups: [String]
        let reference: [String: Any]

        var methods: [String: Any] { reference["methods"] as? [String: Any] ?? [:] }
        func method(_ name: String) -> [String: Any] { methods[name] as? [String: Any] ?? [:] }
    }

    static func load(_ name: String) throws -> GoldenSet {
        let folder = Fixtures.url("detectors/\(name)")
        let embeddings = try Tensor(npyAt: folder.appendingPathComponent("embeddings.npy"))
        let lines = try String(contentsOf: folder.appendingPathComponent("groups.csv"), encoding: .utf8)
            .split(separator: "\n").dropFirst()
        let groups = lines.map { String($0.split(separator: ",")[0]) }
        let data = try Data(contentsOf: folder.appendingPathComponent("reference.json"))
        let reference = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        let x = Matrix(rows: embeddings.shape[0], columns: embeddings.shape[1], values: try embeddings.doubles())
        return GoldenSet(x: x, groups: groups, reference: reference)
    }

    /// The reference runs with its default seed, 42, and the groups as labels (the seed's call).
    static func fit(_ set: GoldenSet) throws -> DetectionReport {
        try ShortcutDetector(seed: 42).fit(set.x, groups: set.groups, labels: nil)
    }

    @Test(arguments: sets) func holdoutSplitsAreTheReferenceOnes(_ name: String) throws {
        let set = try Self.load(name)
        let (names, classes) = ShortcutDetector.encode(set.groups)
        let split = try ReferenceSplit.stratified(classes: classes, classCount: names.count, testSize: 0.2, seed: 42)
        #expect(split.train == set.method("probe")["train_indices"] as? [Int])
        #expect(split.test == set.method("probe")["test_indices"] as? [Int])
        let permuted = ReferenceSplit.permuted(count: set.x.rows, testSize: 0.2, seed: 42)
        #expect(permuted.train == set.method("hbac")["train_indices"] as? [Int])
        #expect(permuted.test == set.method("hbac")["test_indices"] as? [Int])
    }

    @Test(arguments: sets) func probeMatchesTheReference(_ name: String) throws {
        let set = try Self.load(name)
        let probe = try #require(try Self.fit(set).probe)
        let reference = set.method("probe")
        let f1 = try #require(reference["value"] as? Double)
        // Same split, same convex objective: the models differ only by where each solver stops
        // (scikit-learn's lbfgs at a gradient of 1e-4). 0.02 is the bound; one sample of
        // an 80-row holdout moves F1 by up to about 0.013.
        #expect(abs(probe.value - f1) <= 0.02, "\(name): F1 \(probe.value), reference \(f1)")
        #expect(abs(probe.accuracy - (reference["accuracy"] as? Double ?? .nan)) <= 0.02)
        #expect(abs(probe.rocAUC - (reference["roc_auc"] as? Double ?? .nan)) <= 0.02)
        #expect(probe.linearDetected == reference["detected"] as? Bool)
        #expect(probe.linearRisk.rawValue == reference["risk"] as? String)
        #expect(probe.threshold == reference["threshold"] as? Double)
    }

    @Test(arguments: sets) func mannWhitneyMatchesSciPy(_ name: String) throws {
        let set = try Self.load(name)
        let statistical = try #require(try Self.fit(set).statistical)
        let reference = try #require(set.method("statistical")["comparisons"] as? [[String: Any]])
        #expect(statistical.comparisons.count == reference.count)
        for (ours, theirs) in zip(statistical.comparisons, reference) {
            // SciPy's key is "<a>_vs_<b>" (or "_vs_rest").
            #expect(ours.groups.joined(separator: "_vs_") == theirs["key"] as? String)
            let p = try #require(theirs["p_values"] as? [Double])
            let worst = zip(ours.pValues, p).map { abs($0 - $1) }.max() ?? .infinity
            // Both compute the same closed form in double precision; 1e-6 is the bound.
            #expect(worst <= 1e-6, "\(name) \(ours.groups): max |Δp| \(worst)")
            #expect(ours.significant == theirs["significant"] as? Int)
            #expect(ours.significantUncorrected == theirs["significant_uncorrected"] as? Int)
            #expect(ours.features == theirs["features"] as? [Int])
        }
        #expect(statistical.risk.rawValue == set.method("statistical")["risk"] as? String)
    }

    @Test(arguments: sets) func hbacVerdictMatchesTheReference(_ name: String) throws {
        let set = try Self.load(name)
        let hbac = try #require(try Self.fit(set).hbac)
        let reference = set.method("hbac")
        #expect(hbac.detected == reference["detected"] as? Bool, "\(name)")
        #expect(hbac.risk.rawValue == reference["risk"] as? String, "\(name)")
        let confidence = (reference["confidence"] as? String).map { $0 == "medium" ? "moderate" : $0 }
        #expect(hbac.confidence.rawValue == confidence, "\(name)")
        #expect(hbac.types == reference["types"] as? [String], "\(name)")
    }

    @Test(arguments: sets) func geometryMatchesTheReference(_ name: String) throws {
        let set = try Self.load(name)
        let geometric = try #require(try Self.fit(set).geometric)
        let reference = set.method("geometric")
        #expect(geometric.risk.rawValue == reference["risk"] as? String)
        let bias = try #require(reference["bias_pairs"] as? [[String: Any]])
        let subspaces = try #require(reference["subspace_pairs"] as? [[String: Any]])
        #expect(geometric.pairs.count == bias.count)
        for pair in geometric.pairs {
            let b = try #require(bias.first { $0["groups"] as? [String] == pair.groups })
            let s = try #require(subspaces.first { $0["groups"] as? [String] == pair.groups })
            // Eigenvectors of the covariance instead of the SVD of the data: the same subspaces to
            // ~1e-10; 1e-6 relative leaves room for near-equal fifth and sixth singular values.
            func close(_ a: Double, _ key: String, _ entry: [String: Any]) -> Bool {
                guard let b = entry[key] as? Double else { return false }
                return abs(a - b) <= 1e-6 * max(abs(b), 1)
            }
            #expect(close(pair.effectSize, "effect_size", b), "\(name) \(pair.groups) effect \(pair.effectSize)")
            #expect(close(pair.alignment, "alignment", b), "\(name) \(pair.groups) alignment \(pair.alignment)")
            #expect(close(pair.projectionGap, "projection_gap", b))
            #expect(close(pair.directionNorm, "direction_norm", b))
            #expect(close(pair.meanCosine, "mean_cosine", s), "\(name) \(pair.groups) mean cosine \(pair.meanCosine)")
            // Angles from arccos near 1 amplify the cosines' rounding: 1e-3 degrees.
            #expect(abs(pair.minAngleDegrees - (s["min_angle_deg"] as? Double ?? .nan)) <= 1e-3)
            #expect(abs(pair.maxAngleDegrees - (s["max_angle_deg"] as? Double ?? .nan)) <= 1e-3)
        }
    }

    @Test(arguments: sets) func overallRiskMatchesTheReference(_ name: String) throws {
        let set = try Self.load(name)
        let report = try Self.fit(set)
        let reference = try #require((set.reference["overall"] as? [String: Any])?["risk"] as? String)
        // The reference's rule on the reference's methods: our indicators, less the probe when
        // only the quadratic probe (which the reference does not have) fired.
        let probeOnlyNonlinear = report.probe.map { $0.detected && !$0.linearDetected } ?? false
        let count = report.overall.indicators.filter { $0 != .probe || !probeOnlyNonlinear }.count
        let referenceRule: RiskLevel = count >= 2 ? .high : count == 1 ? .moderate : .low
        #expect(referenceRule.rawValue == reference, "\(name)")
        if !probeOnlyNonlinear { #expect(report.overall.risk.rawValue == reference, "\(name)") }
    }

    @Test func theNonlinearShortcutIsFlagged() throws {
        let report = try Self.fit(try Self.load("nonlinear"))
        let probe = try #require(report.probe)
        #expect(probe.value < 0.7, "the linear probe should miss the concentric circles, scored \(probe.value)")
        #expect(probe.nonlinear.value >= 0.8, "quadratic probe F1 \(probe.nonlinear.value)")
        #expect(probe.detected)
        #expect(report.overall.risk != .low)
        #expect(report.overall.summary.contains("quadratic probe"))
    }

    @Test func theNoShortcutSetStaysLowWithBothProbes() throws {
        let report = try Self.fit(try Self.load("none"))
        let probe = try #require(report.probe)
        #expect(!probe.nonlinear.detected, "quadratic probe F1 \(probe.nonlinear.value) on pure noise")
        #expect(report.overall.risk == .low)
        #expect(report.overall.summary.hasPrefix("Low shortcut risk"))
    }

    @Test func fitsRepeatExactly() throws {
        let set = try Self.load("multiclass")
        let a = try Self.fit(set)
        let b = try Self.fit(set)
        #expect(a.probe == b.probe && a.statistical == b.statistical && a.hbac == b.hbac && a.geometric == b.geometric)
        #expect(a.projection == b.projection)
    }
}

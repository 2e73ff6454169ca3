import Foundation
import ShortcutDetect
import TestSupport
import Testing

/// Every input a fuzz target once crashed on (`Fixtures/fuzz-regressions/<target>/`, written by
/// `tools/fuzz.sh`) must now end in one of our errors, under the budget the fuzzer runs with.
@Suite struct FuzzRegressionTests {
    static let root = Fixtures.url("fuzz-regressions")

    /// (target, file) for every regression input.
    static let cases: [(String, String)] = {
        let targets = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return targets.sorted().flatMap { target in
            let files = (try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(target).path)) ?? []
            return files.filter { !$0.hasPrefix(".") }.sorted().map { (target, $0) }
        }
    }()

    @Test func everyFolderNamesATarget() throws {
        let folders = Set(Self.cases.map(\.0))
        #expect(folders.isSubset(of: Set(FuzzTargets.all.keys)), "folders without a target: \(folders.subtracting(FuzzTargets.all.keys))")
    }

    /// The state target's seed is a report `merge` accepts, so mutations start from the real path.
    @Test func theStateSeedMerges() throws {
        try FuzzTargets.state(FuzzTargets.stateSeed())
    }

    @Test(arguments: cases)
    func replaysWithoutCrashing(target: String, file: String) throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent(target).appendingPathComponent(file))
        let problem = MemoryBudget.withLimit(FuzzTargets.memoryBudget) { FuzzTargets.run(target, data) }
        #expect(problem == nil, "\(target)/\(file): \(problem ?? "")")
    }
}

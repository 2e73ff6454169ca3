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

    /// Mutations of the seed reach the checks behind the manifest (the target writes one that
    /// matches), each refused with its own sentence.
    @Test func theStateTargetReachesTheMergeChecks() throws {
        var parts = FuzzTargets.split(FuzzTargets.stateSeed(), separator: FuzzTargets.stateSeparator, parts: FuzzTargets.stateFiles.count)
        func refusal(_ edit: (inout [Data]) -> Void) -> String {
            var edited = parts
            edit(&edited)
            let data = edited.dropFirst().reduce(edited[0]) { $0 + FuzzTargets.stateSeparator + $1 }
            do { try FuzzTargets.state(data) } catch let error as AuditError { return "\(error)" } catch { return "not ours: \(error)" }
            return "merged"
        }
        #expect(refusal { $0[2] = Data("{}".utf8) }.contains("holds the groups [] but the records hold"))
        #expect(refusal { $0[5] += Data(count: 4) }.contains("state/pooled.f32 has 1028 bytes; 4 rows of 64 float32 values need 1024"))
        #expect(refusal { $0[8] = Data("not a png".utf8) }.contains("is not a valid overlay"))
        #expect(refusal { $0[7] = Data("0,1,2".utf8) }.contains("state/overlays/3.png (No such file or directory)"))
        #expect(refusal { $0[0] = Data(String(decoding: $0[0], as: UTF8.self).replacingOccurrences(of: "\"height\":8", with: "\"height\":9223372036854775807").utf8) }
            .contains("holds impossible settings: a 9223372036854775807x8 input"))
        var sums = try JSONDecoder().decode([String: [Int64]].self, from: parts[2])
        sums["A"]?[0] = Int64.max
        parts[2] = try JSONEncoder().encode(sums)
        #expect(refusal { _ in }.contains("state/sums.json: group 'A' sums to"))
    }

    @Test(arguments: cases)
    func replaysWithoutCrashing(target: String, file: String) throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent(target).appendingPathComponent(file))
        let problem = MemoryBudget.withLimit(FuzzTargets.memoryBudget) { FuzzTargets.run(target, data) }
        #expect(problem == nil, "\(target)/\(file): \(problem ?? "")")
    }
}

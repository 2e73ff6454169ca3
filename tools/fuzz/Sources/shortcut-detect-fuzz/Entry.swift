import Foundation
import ShortcutDetect

// libFuzzer's entry points. `FUZZ_TARGET` picks the target (a name of `FuzzTargets.all`);
// `tools/fuzz.sh` sets it.

nonisolated(unsafe) private var targetName = ""

@_cdecl("LLVMFuzzerInitialize")
public func initialize(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    guard let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"], FuzzTargets.all[name] != nil else {
        FileHandle.standardError.write(Data("set FUZZ_TARGET to one of: \(FuzzTargets.all.keys.sorted().joined(separator: ", "))\n".utf8))
        exit(2)
    }
    // tools/fuzz.sh asks for the seeds that are made rather than copied from the fixtures.
    if let folder = ProcessInfo.processInfo.environment["FUZZ_WRITE_SEED"] {
        guard name == "state" else { exit(0) }
        do { try FuzzTargets.stateSeed().write(to: URL(fileURLWithPath: folder).appendingPathComponent("seed")) } catch {
            FileHandle.standardError.write(Data("cannot write the seed to \(folder): \(error)\n".utf8))
            exit(1)
        }
        exit(0)
    }
    targetName = name
    MemoryBudget.limit = FuzzTargets.memoryBudget
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let data = bytes.map { Data(bytes: $0, count: size) } ?? Data()
    // A foreign error is a finding too: every error a user sees must be ours.
    if let problem = FuzzTargets.run(targetName, data) { fatalError("error that is not ours: \(problem)") }
    return 0
}

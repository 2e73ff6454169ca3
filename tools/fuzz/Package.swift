// swift-tools-version:6.0
import PackageDescription

// libFuzzer targets for ShortcutDetect, built by tools/fuzz.sh with `--sanitize=fuzzer` (kept out
// of the main package: its manifest stays free of sanitizer flags). The targets themselves live in
// Tests/ShortcutDetectCLITests/FuzzTargets.swift, which the regression tests replay.
let package = Package(
    name: "ShortcutDetectFuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "ShortcutDetect", path: "../..")],
    targets: [
        .executableTarget(
            name: "shortcut-detect-fuzz",
            dependencies: [.product(name: "ShortcutDetect", package: "ShortcutDetect")]),
    ]
)

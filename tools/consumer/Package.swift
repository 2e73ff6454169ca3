// swift-tools-version:6.0
// A package that depends on ShortcutDetect by path, as a user's would, and uses only its public API:
// tools/check-consumer.sh builds it, and checks that the library's internals stay out of its reach.
import PackageDescription

// A path dependency's identity is its folder's name, which is whatever the checkout is called.
let root = String(#filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(3).joined(separator: "/"))
let rootName = String(root.split(separator: "/").last ?? "ShortcutDetect")

let package = Package(
    name: "Consumer",
    platforms: [.macOS(.v13)],
    dependencies: [.package(path: root)],
    targets: [.target(name: "Consumer", dependencies: [.product(name: "ShortcutDetect", package: rootName)])]
)

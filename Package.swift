// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ShortcutDetect",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "ShortcutDetect", targets: ["ShortcutDetect"]),
        .executable(name: "shortcut-detect", targets: ["ShortcutDetectCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `swift package generate-documentation` (tools/docs.sh); a command plugin, never linked into a product.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // C libraries: the protobuf-c runtime, the decoder generated from our onnx.proto, BLAS, image codecs.
        .systemLibrary(
            name: "CProtobufC", pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"]), .brew(["protobuf-c"])]),
        .target(name: "CONNXProto", dependencies: ["CProtobufC"], exclude: ["proto"]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // Our AVX-512 matrix-product kernels (enabled per function, chosen at run time).
        .target(name: "CKernels"),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .systemLibrary(
            name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"]), .brew(["jpeg-turbo"])]),

        // bytes -> model -> forward (and backward): tensors, the ONNX model, the executor and its ops.
        .target(
            name: "TensorCore",
            dependencies: ["CKernels", .target(name: "CBLAS", condition: .when(platforms: [.linux]))]),
        .target(name: "ONNXModel", dependencies: ["TensorCore", "CONNXProto"]),
        .target(name: "GraphEngine", dependencies: ["TensorCore", "ONNXModel", "CKernels"]),
        // -> backward -> heatmap: target layers, CAM methods, token grids.
        .target(name: "Explain", dependencies: ["TensorCore", "ONNXModel", "GraphEngine"]),
        // -> image/report: image files, torchvision-equal preprocessing, colormaps, overlays.
        .target(name: "Imaging", dependencies: ["TensorCore", "CPNG", "CZlib", "CTurboJPEG"]),
        // Embedding-based detectors: probes, statistical tests, clustering, geometry (the seed's ShortcutDetector).
        .target(name: "Detectors", dependencies: ["TensorCore"]),
        // Audits: group comparison, shortcut-region scores, dataset reports.
        .target(name: "Audit", dependencies: ["TensorCore", "GraphEngine", "Explain", "Imaging", "Detectors"]),
        .target(
            name: "ShortcutDetect", dependencies: ["TensorCore", "ONNXModel", "GraphEngine", "Explain", "Imaging", "Detectors", "Audit"]),
        .executableTarget(
            name: "ShortcutDetectCLI",
            dependencies: ["ShortcutDetect", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        .target(name: "TestSupport", dependencies: ["TensorCore"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "TestSupport"]),
        .testTarget(name: "ONNXModelTests", dependencies: ["ONNXModel", "TestSupport"]),
        .testTarget(
            name: "GraphEngineTests", dependencies: ["GraphEngine", "ONNXModel", "TestSupport"],
            exclude: ["onnx-node-tests.txt"]),
        .testTarget(name: "ExplainTests", dependencies: ["Explain", "GraphEngine", "ONNXModel", "TestSupport"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "TestSupport"]),
        .testTarget(name: "DetectorsTests", dependencies: ["Detectors", "TestSupport"]),
        .testTarget(name: "AuditTests", dependencies: ["Audit", "ShortcutDetect", "TestSupport"]),
        .testTarget(name: "ShortcutDetectCLITests", dependencies: ["ShortcutDetectCLI", "ShortcutDetect", "TestSupport"]),
    ]
)

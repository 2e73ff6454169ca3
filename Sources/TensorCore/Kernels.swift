import CKernels
import Foundation

/// A level of our CPU kernels (the `CKernels` target).
///
/// `avx512` and `avx2` (AVX2 with FMA) run our float32 products and element-wise kernels at that
/// vector width; both compute the same bits. `portable` sends every product to the BLAS and every
/// loop to Swift, and runs on any CPU.
public enum KernelLevel: String, CaseIterable, Sendable, CustomStringConvertible {
    /// AVX-512 (F, with the 512-bit products).
    case avx512
    /// AVX2 with FMA.
    case avx2
    /// The BLAS and Swift loops; any CPU.
    case portable

    /// `avx512`, `avx2` or `portable`.
    public var description: String { rawValue }

    /// Whether this CPU (and its operating system) runs the level.
    public var isSupported: Bool { self == .portable || sd_kernels_for(cLevel) != nil }

    /// The levels this CPU runs, widest first.
    public static var supported: [KernelLevel] { allCases.filter(\.isSupported) }

    var cLevel: sd_level {
        switch self {
        case .avx512: SD_LEVEL_AVX512
        case .avx2: SD_LEVEL_AVX2
        case .portable: SD_LEVEL_PORTABLE
        }
    }
}

/// `SHORTCUT_DETECT_KERNELS` names no kernel level, or one this CPU cannot run.
public struct KernelSelectionError: Error, Equatable, CustomStringConvertible {
    /// The variable's value.
    public let value: String
    /// The levels this CPU runs.
    public let supported: [KernelLevel]

    /// The error for `value` on a CPU that runs `supported`.
    public init(value: String, supported: [KernelLevel]) { (self.value, self.supported) = (value, supported) }

    /// What was asked for and what this CPU runs.
    public var description: String {
        let levels = supported.map(\.rawValue).joined(separator: ", ")
        if KernelLevel(rawValue: value) == nil {
            return "SHORTCUT_DETECT_KERNELS=\(value) is not a kernel level: use avx512, avx2 or portable (this CPU runs \(levels))"
        }
        return "SHORTCUT_DETECT_KERNELS=\(value): this CPU does not run the \(value) kernels (it runs \(levels))"
    }
}

/// The kernels a process runs: one table, chosen once, that ops consult instead of checking CPU
/// features themselves.
///
/// Where a kernel family is `nil` (the portable level) callers use the BLAS and their Swift loops.
public struct Kernels: Sendable {
    /// The level these kernels run at.
    public let level: KernelLevel
    /// Our float32 products (packed weights, epilogues, any operand layout), or `nil`.
    package let gemm: PackedGEMM?
    /// Our float32 element-wise, softmax and Winograd transform kernels, or `nil`.
    package let vector: VectorKernels?

    /// The kernels of `level`, or `nil` when this CPU cannot run it.
    package init?(level: KernelLevel) {
        self.level = level
        guard level != .portable else {
            (gemm, vector) = (nil, nil)
            return
        }
        guard let table = sd_kernels_for(level.cLevel) else { return nil }
        gemm = PackedGEMM(table)
        vector = VectorKernels(table)
    }

    /// This process's kernels: the level `SHORTCUT_DETECT_KERNELS` names, else the widest this CPU
    /// runs. When the variable names no level or one the CPU cannot run, this is the portable
    /// level and ``selectionError`` says what went wrong; ``validateSelection()`` (which the
    /// executor calls) then throws it, so nothing runs on a level the user did not ask for.
    public static var current: Kernels { selection.kernels }

    /// Why `SHORTCUT_DETECT_KERNELS` could not be honoured, or `nil`.
    public static var selectionError: KernelSelectionError? { selection.error }

    /// Throws ``selectionError`` if there is one.
    public static func validateSelection() throws {
        if let error = selection.error { throw error }
    }

    private static let selection: (kernels: Kernels, error: KernelSelectionError?) = {
        let portable = Kernels(level: .portable)!
        let value = ProcessInfo.processInfo.environment["SHORTCUT_DETECT_KERNELS"] ?? ""
        if value.isEmpty {
            return (KernelLevel.supported.lazy.compactMap { Kernels(level: $0) }.first ?? portable, nil)
        }
        guard let level = KernelLevel(rawValue: value), let kernels = Kernels(level: level) else {
            return (portable, KernelSelectionError(value: value, supported: KernelLevel.supported))
        }
        return (kernels, nil)
    }()
}

extension Kernels {
    /// `destination[i] = source[2 i]` for `i < count`: what a stride-2 window reads along a row,
    /// four at a time on x86-64.
    package static func copyEverySecond(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, count: Int) {
        sd_copy_every_second(source, destination, count)
    }
}

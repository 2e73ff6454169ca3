import CKernels
import Foundation

/// Which of our CPU-specific kernels (the `CKernels` target) this process runs.
public enum CPUKernels {
    /// The AVX-512 kernels run: the CPU has AVX-512 and `SHORTCUT_DETECT_KERNELS=portable` is not
    /// set. Otherwise every product goes through the BLAS and every element-wise loop stays in
    /// Swift (the test script runs the suite both ways).
    public static let avx512 =
        sd_avx512_available() == 1 && ProcessInfo.processInfo.environment["SHORTCUT_DETECT_KERNELS"] != "portable"
}

/// Element-wise float32 kernels in AVX-512, for the transcendental functions whose Swift loops
/// stay at SSE2's four lanes (the package builds for the baseline CPU).
public enum VectorKernels {
    /// Whether they run (``CPUKernels/avx512``); callers otherwise use their Swift loops.
    public static var isAvailable: Bool { CPUKernels.avx512 }

    /// `y[i] = erf(x[i])`, the same rational approximation as the Swift kernel (error ≤ 4.1e-7).
    public static func erf(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        map(x, y, count, sd_erf)
    }

    /// `y[i] = x[i] (1 + erf(x[i] / √2)) / 2`.
    public static func gelu(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        map(x, y, count, sd_gelu)
    }

    /// The softmax of each of `rows` contiguous rows of `extent` values, max-subtracted, rows
    /// split over the kernel threads; `exp` within 2 ulp (Cephes' expf polynomial).
    public static func softmax(
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int, extent: Int
    ) {
        Parallel.forEach(rows, grain: max(1, 8_192 / max(extent, 1))) { range in
            sd_softmax_rows(x + range.lowerBound * extent, y + range.lowerBound * extent, range.count, extent)
        }
    }

    /// `y[i] = (x[i] · (erf(x[i] / divisor) + one)) · half`: the exporters' five-node GELU in one
    /// pass, each operation rounded as the separate nodes round it.
    public static func geluChain(
        _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int, divisor: Float, one: Float, half: Float
    ) {
        Parallel.forEach(count, grain: 65_536) { r in
            sd_gelu_chain(x + r.lowerBound, y + r.lowerBound, r.count, divisor, one, half)
        }
    }

    /// `out[i] = g[i] · erf′(x[i]) = g[i] · 2/√π · e^(−x[i]²)`.
    public static func erfBackward(
        _ x: UnsafePointer<Float>, gradient g: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int
    ) {
        map(x, g, out, count, sd_erf_backward)
    }

    /// `out[i] = g[i] · GELU′(x[i]) = g[i] · (Φ(x) + x φ(x))`.
    public static func geluBackward(
        _ x: UnsafePointer<Float>, gradient g: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int
    ) {
        map(x, g, out, count, sd_gelu_backward)
    }

    private static func map(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ count: Int,
        _ kernel: (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void
    ) {
        Parallel.forEach(count, grain: 65_536) { range in
            kernel(x + range.lowerBound, y + range.lowerBound, range.count)
        }
    }

    /// ``map(_:_:_:_:)`` for kernels of two inputs.
    private static func map(
        _ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ count: Int,
        _ kernel: (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void
    ) {
        Parallel.forEach(count, grain: 65_536) { range in
            kernel(x + range.lowerBound, g + range.lowerBound, out + range.lowerBound, range.count)
        }
    }
}

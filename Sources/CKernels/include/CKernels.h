#ifndef SHORTCUTDETECT_CKERNELS_H
#define SHORTCUTDETECT_CKERNELS_H

#include <stddef.h>

// Our float32 kernels at two x86 levels, AVX-512 and AVX2 + FMA, each function compiled for its
// level by a target attribute (the package builds for the baseline CPU) and reached through one
// table per level, chosen at run time. Every function of a level's table computes the same bits
// as the other level's: products are fused multiply-add chains in depth order, and the
// element-wise kernels run the same operations lane by lane.

/// A kernel level: the portable one has no table (BLAS and Swift loops run instead).
typedef enum { SD_LEVEL_PORTABLE = 0, SD_LEVEL_AVX2 = 1, SD_LEVEL_AVX512 = 2 } sd_level;

/// One product `C = A · B` (`+ C` when accumulate), then `+ row_bias[i]`, `+ column_bias[j]`,
/// `+ residual[i * ldr + j]` (a residual connection's other term) and `max(0, ·)` when relu, in
/// that order, each rounded: the bits of the separate bias, `Add` and `Relu` ops.
///
/// A's element (i, p) is at `a[i * a_row_stride + p * a_depth_stride]` (either stride may be 1,
/// so A may be row-major or transposed), or, with both strides 0, `a` points at the micro-panel
/// of its first row in a packed A. B is row-major with row stride `ldb` (its columns contiguous),
/// or, with `ldb` 0, `b` points at the micro-panel of its first column in a packed B. C is
/// row-major with row stride `ldc`. Each element is the chain `c = fma(a_ip, b_pj, c)` over
/// p = 0, 1, ... from `c` = 0 (or C), so it depends neither on the shapes, the split, the
/// blocking nor the level.
typedef struct {
    int m, n, k;
    const float *a;
    long a_row_stride, a_depth_stride;
    const float *b;
    long ldb;
    float *c;
    long ldc;
    int accumulate, relu;
    const float *row_bias, *column_bias;
    /// Added after the biases when not null; row stride `ldr`.
    const float *residual;
    long ldr;
    /// Depth and row blocks, from ``sd_gemm_blocking`` (any positive values give the same bits).
    int kc, mc;
} sd_gemm_problem;

/// One level's kernels. Panel geometry: a packed A holds micro-panels of `mr` rows, a packed B
/// micro-panels of `nr` columns (the last one narrower: its width rounded up to `lanes`).
typedef struct {
    sd_level level;
    int mr, nr, lanes;
    void (*gemm)(const sd_gemm_problem *problem);
    /// y = erf(x) by the rational approximation on [-4, 4] of the Swift kernel (largest error
    /// 4.1e-7); NaN stays NaN.
    void (*erf)(const float *x, float *y, long count);
    /// y = x (1 + erf(x / sqrt 2)) / 2, GELU.
    void (*gelu)(const float *x, float *y, long count);
    /// y = (x * (erf(x / divisor) + one)) * half: the exporters' five-node GELU, each operation
    /// rounded as the separate nodes round it.
    void (*gelu_chain)(const float *x, float *y, long count, float divisor, float one, float half);
    /// out = g * 2/sqrt(pi) * exp(-x^2), erf's backward.
    void (*erf_backward)(const float *x, const float *g, float *out, long count);
    /// out = g * (Phi(x) + x phi(x)), GELU's backward.
    void (*gelu_backward)(const float *x, const float *g, float *out, long count);
    /// Softmax of each of `rows` contiguous rows of `extent` floats, max-subtracted; exp within
    /// 2 ulp (Cephes' expf polynomial).
    void (*softmax_rows)(const float *x, float *y, long rows, long extent);
    /// Layer normalization of each of `rows` contiguous rows of `size` floats: mean and variance
    /// summed in double precision (eight lanes, one fixed tree), y = (float)((x - mean) * inverse)
    /// * gamma + beta with inverse = 1 / sqrt(variance + epsilon); each row's mean and inverse
    /// go to means[r] and inverses[r] as floats.
    void (*layer_norm_rows)(const float *x, float *y, long rows, long size, const float *gamma, const float *beta,
                            double epsilon, float *means, float *inverses);
    /// Winograd F(2x2, 3x3) input transform of `count` tiles in tile row `ty` from tile column
    /// `tx` of one channel plane `image` (height x width, zero outside): (B^T d B)[xi][nu] of each
    /// tile goes to v[(4 xi + nu) * plane + t] for tile t of the run.
    void (*winograd_input)(const float *image, int height, int width, int pad_top, int pad_left, int ty, int tx,
                           int count, float *v, long plane);
    /// Winograd output transform of `count` tiles (tile t's 16 points at m[point * plane + t]) into
    /// the 2x2 blocks of the output plane `map` (height x width) at tile row `ty` from tile column
    /// `tx`, plus `bias`, plus `residual` (a plane laid out as `map`) when not null, then max(0, .)
    /// when relu (NaN kept), each step rounded.
    void (*winograd_output)(const float *m, long plane, int count, float *map, int height, int width, int ty, int tx,
                            float bias, const float *residual, int relu);
    /// Max pooling of `count` outputs along one output row: output j is the largest of the taps
    /// src[r * row_step + stride * j + t] for rows r < rows (at least one) and taps t < kernel,
    /// visited in that order, the first starting and a later one replacing the maximum only when
    /// greater (a NaN first tap stays; a NaN elsewhere is passed over). Stride 1 or 2. Reads only
    /// src[r * row_step + i] for i < readable, which must cover every tap of the `count` outputs.
    void (*max_pool_row)(const float *src, long row_step, int rows, int kernel, int stride, long readable, float *out,
                         int count);
} sd_kernels;

/// The table of `level`, or NULL when this CPU (and its operating system) cannot run it; always
/// NULL for SD_LEVEL_PORTABLE and off x86-64.
const sd_kernels *sd_kernels_for(sd_level level);

/// Depth block (kc) and row block (mc) for `kernels`, from this CPU's level-2 cache size: the B
/// micro-panel of kc x nr floats takes an eighth of it, the mc x kc block of A half.
void sd_gemm_blocking(const sd_kernels *kernels, int *kc, int *mc);

/// The level-2 cache size in bytes (per core) as the system reports it, 0 where unknown.
long sd_l2_cache_size(void);

/// dst[i] = src[2 i] for i < count: the columns a stride-2 window reads (SSE2 on x86-64, the
/// baseline every level has).
void sd_copy_every_second(const float *src, float *dst, long count);

/// Floats a packed A of m rows and depth k needs (whole micro-panels of mr rows, zero-padded).
size_t sd_gemm_packed_a_count(const sd_kernels *kernels, int m, int k);
/// Floats a packed B of depth k and n columns needs.
size_t sd_gemm_packed_b_count(const sd_kernels *kernels, int k, int n);
/// Packs A (element (i, p) at a[i * row_stride + p * depth_stride]) into micro-panels of mr
/// rows: panel r starts at out + r * mr * k and holds its rows depth by depth.
void sd_gemm_pack_a(const sd_kernels *kernels, int m, int k, const float *a, long row_stride, long depth_stride,
                    float *out);
/// Packs B (element (p, j) at b[p * depth_stride + j * column_stride]) into micro-panels of nr
/// columns: the panel of column j0 starts at out + j0 * k and holds its columns depth by depth.
void sd_gemm_pack_b(const sd_kernels *kernels, int k, int n, const float *b, long depth_stride, long column_stride,
                    float *out);

#endif

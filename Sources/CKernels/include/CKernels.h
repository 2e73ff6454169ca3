#ifndef SHORTCUTDETECT_CKERNELS_H
#define SHORTCUTDETECT_CKERNELS_H

#include <stddef.h>

/// Rows of A per micro-panel of a packed A.
#define SD_GEMM_MR 8
/// Columns of B per micro-panel of a packed B (the last panel is narrower: its width rounded up to 16).
#define SD_GEMM_NR 48

/// 1 when this CPU runs AVX-512 (the kernels below), else 0: callers then use BLAS and Swift loops.
int sd_avx512_available(void);

/// Floats a packed A of m rows and depth k needs (whole micro-panels, zero-padded).
size_t sd_gemm_packed_a_count(int m, int k);
/// Floats a packed B of depth k and n columns needs.
size_t sd_gemm_packed_b_count(int k, int n);

/// Packs A (element (i, p) at a[i * row_stride + p * depth_stride]) into micro-panels of
/// SD_GEMM_MR rows: panel r starts at out + r * SD_GEMM_MR * k and holds its rows depth by depth.
void sd_gemm_pack_a(int m, int k, const float *a, long row_stride, long depth_stride, float *out);
/// Packs B (element (p, j) at b[p * depth_stride + j * column_stride]) into micro-panels of
/// SD_GEMM_NR columns: the panel of column j0 starts at out + j0 * k and holds its columns depth by depth.
void sd_gemm_pack_b(int k, int n, const float *b, long depth_stride, long column_stride, float *out);

/// C = A · B (+ C when accumulate), then + row_bias[i] or column_bias[j] and max(0, ·) when relu.
///
/// A is packed (lda == 0: a points at the micro-panel of its first row) or row-major with row
/// stride lda; B is packed (ldb == 0: b points at the micro-panel of its first column, whose
/// panels are all full but possibly the last one of the whole packed B) or row-major with row
/// stride ldb. C is row-major with row stride ldc. Each element is summed in depth order
/// whatever m, n and the operands' forms, so a column's result never depends on its neighbours.
/// Only on CPUs where sd_avx512_available() is 1.
void sd_gemm(int m, int n, int k, const float *a, long lda, const float *b, long ldb, float *c, long ldc,
             int accumulate, const float *row_bias, const float *column_bias, int relu);


/// y = erf(x) for count floats, by the rational approximation on [-4, 4] of the Swift kernel
/// (largest error 4.1e-7); NaN stays NaN. Only where sd_avx512_available() is 1.
void sd_erf(const float *x, float *y, long count);
/// y = x (1 + erf(x / sqrt 2)) / 2, GELU, for count floats. Only where sd_avx512_available() is 1.
void sd_gelu(const float *x, float *y, long count);
/// y = (x * (erf(x / divisor) + one)) * half for count floats: the exporters' five-node GELU,
/// each operation rounded as the separate nodes round it.
void sd_gelu_chain(const float *x, float *y, long count, float divisor, float one, float half);
/// out = g * 2/sqrt(pi) * exp(-x^2), erf's backward, for count floats.
void sd_erf_backward(const float *x, const float *g, float *out, long count);
/// out = g * (Phi(x) + x phi(x)), GELU's backward, for count floats.
void sd_gelu_backward(const float *x, const float *g, float *out, long count);

/// Softmax of each of `rows` contiguous rows of `extent` floats, max-subtracted; exp within 2 ulp
/// (Cephes' expf polynomial). Only where sd_avx512_available() is 1.
void sd_softmax_rows(const float *x, float *y, long rows, long extent);

/// Winograd F(2x2, 3x3) input transform of `count` tiles in tile row `ty` from tile column `tx`
/// of one channel plane `image` (height x width, zero outside): (B^T d B)[xi][nu] of each tile goes
/// to v[(4 xi + nu) * plane + t] for tile t of the run. Only where sd_avx512_available() is 1.
void sd_winograd_input(const float *image, int height, int width, int pad_top, int pad_left, int ty, int tx,
                       int count, float *v, long plane);
/// Winograd output transform of `count` tiles (tile t's 16 points at m[point * plane + t]) into
/// the 2x2 blocks of the output plane `map` (height x width) at tile row `ty` from tile column
/// `tx`, plus `bias`, then max(0, .) when relu (NaN kept). Only where sd_avx512_available() is 1.
void sd_winograd_output(const float *m, long plane, int count, float *map, int height, int width, int ty, int tx,
                        float bias, int relu);

#endif

#ifndef SHORTCUTDETECT_CKERNELS_H
#define SHORTCUTDETECT_CKERNELS_H

#include <stddef.h>

/// Rows of A per micro-panel of a packed A.
#define SD_GEMM_MR 8
/// Columns of B per micro-panel of a packed B (the last panel is narrower: its width rounded up to 16).
#define SD_GEMM_NR 48

/// 1 when this CPU runs the AVX-512 kernel, else 0 (callers then use BLAS).
int sd_gemm_available(void);

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
/// Only on CPUs where sd_gemm_available() is 1.
void sd_gemm(int m, int n, int k, const float *a, long lda, const float *b, long ldb, float *c, long ldc,
             int accumulate, const float *row_bias, const float *column_bias, int relu);

#endif

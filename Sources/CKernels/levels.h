// The functions of each level's table (internal to this target), defined in <family>_<level>.c.
#ifndef SHORTCUTDETECT_LEVELS_H
#define SHORTCUTDETECT_LEVELS_H

#include "CKernels.h"

#if defined(__x86_64__)
#define SD_LEVEL_FUNCTIONS(level)                                                                                  \
    void sd_gemm_##level(const sd_gemm_problem *problem);                                                          \
    void sd_erf_##level(const float *x, float *y, long count);                                                     \
    void sd_gelu_##level(const float *x, float *y, long count);                                                    \
    void sd_gelu_chain_##level(const float *x, float *y, long count, float divisor, float one, float half);         \
    void sd_erf_backward_##level(const float *x, const float *g, float *out, long count);                          \
    void sd_gelu_backward_##level(const float *x, const float *g, float *out, long count);                         \
    void sd_softmax_rows_##level(const float *x, float *y, long rows, long extent);                                \
    void sd_layer_norm_rows_##level(const float *x, float *y, long rows, long size, const float *gamma,            \
                                    const float *beta, double epsilon, float *means, float *inverses);             \
    void sd_winograd_input_##level(const float *image, int height, int width, int pad_top, int pad_left, int ty,   \
                                   int tx, int count, float *v, long plane);                                       \
    void sd_winograd_output_##level(const float *m, long plane, int count, float *map, int height, int width,      \
                                    int ty, int tx, float bias, const float *residual, int relu);               \
    void sd_max_pool_row_##level(const float *src, long row_step, int rows, int kernel, int stride, long readable,  \
                                 float *out, int count);

SD_LEVEL_FUNCTIONS(avx512)
SD_LEVEL_FUNCTIONS(avx2)

/// Micro-tile shapes: rows of A by columns of B held in registers (AVX-512: 24 of 32 zmm
/// accumulate 8 x 48; AVX2: 12 of 16 ymm accumulate 6 x 16).
#define SD_AVX512_MR 8
#define SD_AVX512_NR 48
#define SD_AVX2_MR 6
#define SD_AVX2_NR 16
#endif

static inline int sd_imin(int a, int b) { return a < b ? a : b; }

/// Width of a B micro-panel of `columns` columns: nr, or the columns rounded up to whole vectors.
static inline int sd_panel_width(int columns, int nr, int lanes) {
    return columns >= nr ? nr : (columns + lanes - 1) / lanes * lanes;
}

/// C = (0 or C) + row_bias + column_bias, then ReLU: a product of depth 0.
void sd_gemm_empty(const sd_gemm_problem *p);

#endif

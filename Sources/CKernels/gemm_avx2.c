// Single-precision matrix product with AVX2 + FMA micro-kernels: tiles of 6 rows x 16 columns
// (12 of the 16 ymm registers accumulate, two hold B's row, one A's broadcast element), in the
// same operand forms and depth order as the AVX-512 kernels, so the two give the same bits.
#include "levels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define MR SD_AVX2_MR
#define NR SD_AVX2_NR

/// All lanes below `count` set (the sign bit is what masked loads and stores read).
INLINE AVX2 __m256i lanes_below(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Row `r` of a tile: on the last depth block the biases and ReLU, then stored (the last vector
/// under `last_mask` when `partial`). Accumulators by value with a literal row stay in registers.
INLINE AVX2 void store_row(const int vectors, __m256 x0, __m256 x1, float *out, int partial, __m256i last_mask,
                           int last, const float *row_bias, const float *column_bias, const float *residual, int relu) {
    __m256 x[2] = {x0, x1};
    for (int v = 0; v < vectors; v++) {
        int masked = partial && v == vectors - 1;
        __m256 y = x[v];
        if (last) {
            if (row_bias) y = _mm256_add_ps(y, _mm256_set1_ps(*row_bias));
            if (column_bias)
                y = _mm256_add_ps(y, masked ? _mm256_maskload_ps(column_bias + 8 * v, last_mask)
                                            : _mm256_loadu_ps(column_bias + 8 * v));
            if (residual)
                y = _mm256_add_ps(y, masked ? _mm256_maskload_ps(residual + 8 * v, last_mask)
                                            : _mm256_loadu_ps(residual + 8 * v));
            // max(0, y) keeps NaN (the second operand wins when either is NaN), as Swift's max(y, 0).
            if (relu) y = _mm256_max_ps(_mm256_setzero_ps(), y);
        }
        if (masked) _mm256_maskstore_ps(out + 8 * v, last_mask, y);
        else _mm256_storeu_ps(out + 8 * v, y);
    }
}

/// One MR x (8 * vectors) tile of C over depth kb: as the AVX-512 tile (gemm_avx512.c).
INLINE AVX2 void tile(const int vectors, const int packed_a, const int packed_b, int kb, const float *a, long a_rows,
                      long a_depth, const float *b, long b_depth, float *c, long ldc, int rows, int columns,
                      int load_c, int last, const float *row_bias, const float *column_bias, const float *residual,
                      long ldr, int relu) {
    int tail = columns - (vectors - 1) * 8, partial = tail < 8;
    __m256i last_mask = lanes_below(tail);
    __m256 acc[MR][2];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < 2; v++) {
            const float *from = c + (long)r * ldc + 8 * v;
            acc[r][v] = !(load_c && r < rows && v < vectors) ? _mm256_setzero_ps()
                        : partial && v == vectors - 1         ? _mm256_maskload_ps(from, last_mask)
                                                              : _mm256_loadu_ps(from);
        }
    // A packed B is zero-padded to whole vectors; a row-major one must not be read past its end.
    int b_partial = !packed_b && partial;
    const float *row[MR];
    for (int r = 0; r < MR; r++) row[r] = a + (long)(r < rows ? r : 0) * a_rows;
    long offset = 0;
    for (int p = 0; p < kb; p++) {
        __m256 b0, b1 = _mm256_setzero_ps();
        if (vectors == 1) b0 = b_partial ? _mm256_maskload_ps(b, last_mask) : _mm256_loadu_ps(b);
        else {
            b0 = _mm256_loadu_ps(b);
            b1 = b_partial ? _mm256_maskload_ps(b + 8, last_mask) : _mm256_loadu_ps(b + 8);
        }
        // A packed A streams from memory on its first use: fetch 48 depth steps ahead.
        if (packed_a) _mm_prefetch((const char *)(a + 48 * MR), _MM_HINT_T0);
        for (int r = 0; r < MR; r++) {
            __m256 x = _mm256_broadcast_ss(packed_a ? a + r : row[r] + offset);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            if (vectors > 1) acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
        if (packed_a) a += MR;
        else offset += a_depth;
        b += b_depth;
    }
#define STORE_ROW(r)                                                                                         \
    if (r < rows)                                                                                            \
    store_row(vectors, acc[r][0], acc[r][1], c + (long)(r) * ldc, partial, last_mask, last,                \
              row_bias ? row_bias + (r) : 0, column_bias, residual ? residual + (long)(r) * ldr : 0, relu)
    STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3); STORE_ROW(4); STORE_ROW(5);
#undef STORE_ROW
}

#define TILE(vectors, packed, packed_b)                                                                       \
    tile(vectors, packed, packed_b, kb, ap, p->a_row_stride, p->a_depth_stride, bp, b_depth, cp, p->ldc, rows, \
         columns, load_c, last, rb, cb, res, p->ldr, p->relu)
#define DISPATCH(packed, packed_b)                                                                            \
    do {                                                                                                     \
        if (vectors == 2) TILE(2, packed, packed_b);                                                         \
        else TILE(1, packed, packed_b);                                                                      \
    } while (0)

AVX2 void sd_gemm_avx2(const sd_gemm_problem *p) {
    int m = p->m, n = p->n, k = p->k;
    if (m <= 0 || n <= 0) return;
    if (k <= 0) return sd_gemm_empty(p);
    int packed_a = p->a_row_stride == 0 && p->a_depth_stride == 0, packed_b = p->ldb == 0;
    // Row blocks start on a packed A's panels.
    int kc = p->kc > 0 ? p->kc : 256, mc = p->mc >= MR ? p->mc / MR * MR : MR;
    for (int p0 = 0; p0 < k; p0 += kc) {
        int kb = sd_imin(kc, k - p0), load_c = p0 > 0 || p->accumulate, last = p0 + kb >= k;
        for (int i1 = 0; i1 < m; i1 += mc) {
            int i1_end = sd_imin(m, i1 + mc);
            for (int j0 = 0; j0 < n; j0 += NR) {
                int columns = sd_imin(NR, n - j0), width = sd_panel_width(columns, NR, 8), vectors = width / 8;
                const float *bp = packed_b ? p->b + (size_t)j0 * k + (size_t)p0 * width : p->b + j0 + (long)p0 * p->ldb;
                long b_depth = packed_b ? width : p->ldb;
                const float *cb = p->column_bias ? p->column_bias + j0 : 0;
                for (int i0 = i1; i0 < i1_end; i0 += MR) {
                    int rows = sd_imin(MR, m - i0);
                    const float *ap = packed_a ? p->a + (size_t)i0 * k + (size_t)p0 * MR
                                               : p->a + (long)i0 * p->a_row_stride + (long)p0 * p->a_depth_stride;
                    const float *rb = p->row_bias ? p->row_bias + i0 : 0;
                    float *cp = p->c + (long)i0 * p->ldc + j0;
                    const float *res = p->residual ? p->residual + (long)i0 * p->ldr + j0 : 0;
                    if (!packed_a && !packed_b) DISPATCH(0, 0);
                    else if (!packed_a) DISPATCH(0, 1);
                    else if (!packed_b) DISPATCH(1, 0);
                    else DISPATCH(1, 1);
                }
            }
        }
    }
}

#endif

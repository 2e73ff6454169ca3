// Single-precision matrix product with AVX-512 micro-kernels, for operands that can be packed once
// (a layer's weights) and read many times. The function attributes enable AVX-512 for these
// functions only, so the package builds for the baseline CPU and checks for AVX-512 at run time.
#include "CKernels.h"

#include <string.h>

#define MR SD_GEMM_MR
#define NR SD_GEMM_NR
// Depth block: a B micro-panel of KC x NR floats (48 KB) stays in L1/L2 across the row panels.
#define KC 256
// Row block: the MC x KC floats of A (256 KB) stay in L2 across the column panels.
#define MC 256

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int panel_width(int columns) { return columns >= NR ? NR : (columns + 15) / 16 * 16; }

size_t sd_gemm_packed_a_count(int m, int k) { return (size_t)((m + MR - 1) / MR) * MR * (size_t)k; }

size_t sd_gemm_packed_b_count(int k, int n) {
    int full = n / NR * NR;
    return (size_t)k * (size_t)(full + (n > full ? panel_width(n - full) : 0));
}

void sd_gemm_pack_a(int m, int k, const float *a, long row_stride, long depth_stride, float *out) {
    for (int i0 = 0; i0 < m; i0 += MR) {
        int rows = imin(MR, m - i0);
        float *panel = out + (size_t)i0 * k;
        for (int p = 0; p < k; p++) {
            int r = 0;
            for (; r < rows; r++) panel[(size_t)p * MR + r] = a[(long)(i0 + r) * row_stride + (long)p * depth_stride];
            for (; r < MR; r++) panel[(size_t)p * MR + r] = 0;
        }
    }
}

void sd_gemm_pack_b(int k, int n, const float *b, long depth_stride, long column_stride, float *out) {
    for (int j0 = 0; j0 < n; j0 += NR) {
        int columns = imin(NR, n - j0), width = panel_width(columns);
        float *panel = out + (size_t)j0 * k;
        for (int p = 0; p < k; p++) {
            const float *from = b + (long)p * depth_stride + (long)j0 * column_stride;
            float *to = panel + (size_t)p * width;
            int j = 0;
            if (column_stride == 1) {
                memcpy(to, from, sizeof(float) * (size_t)columns);
                j = columns;
            }
            for (; j < columns; j++) to[j] = from[(long)j * column_stride];
            for (; j < width; j++) to[j] = 0;
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

int sd_avx512_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

/// Row `r` of a tile: + C unless first, then (on the last depth block) the biases and ReLU, stored
/// under the masks. Taking the accumulators by value with a literal row keeps them in registers.
static inline __attribute__((always_inline)) AVX512 void store_row(
    const int vectors, __m512 x0, __m512 x1, __m512 x2, float *out, __mmask16 last_mask, int first, int last,
    const float *row_bias, const float *column_bias, int relu) {
    __m512 x[3] = {x0, x1, x2};
    for (int v = 0; v < vectors; v++) {
        __mmask16 mask = v == vectors - 1 ? last_mask : (__mmask16)0xFFFF;
        __m512 y = x[v];
        if (!first) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, out + 16 * v));
        if (last) {
            if (row_bias) y = _mm512_add_ps(y, _mm512_set1_ps(*row_bias));
            if (column_bias) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, column_bias + 16 * v));
            // max(0, y) keeps NaN (the second operand wins when either is NaN), as Swift's max(y, 0).
            if (relu) y = _mm512_max_ps(_mm512_setzero_ps(), y);
        }
        _mm512_mask_storeu_ps(out + 16 * v, mask, y);
    }
}

/// One MR x (16 * vectors) tile of C over depth kb. A is packed (a + p * MR + r) or row-major
/// (row r at a + r * lda; rows past an edge re-read row 0 and are not stored); B row p is at
/// b + p * b_depth. `rows` rows and `columns` columns of the last vector are stored.
static inline __attribute__((always_inline)) AVX512 void tile(
    const int vectors, const int packed_a, const int packed_b, int kb, const float *a, long lda, const float *b, long b_depth,
    float *c, long ldc, int rows, int columns, int first, int last, const float *row_bias,
    const float *column_bias, int relu) {
    __m512 acc[MR][3];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < 3; v++) acc[r][v] = _mm512_setzero_ps();
    int tail = columns - (vectors - 1) * 16;
    __mmask16 last_mask = (__mmask16)(tail >= 16 ? 0xFFFF : (1u << tail) - 1);
    // A packed B is zero-padded to whole vectors; a row-major one must not be read past its end.
    __mmask16 b_mask = packed_b ? (__mmask16)0xFFFF : last_mask;
    const float *row[MR];
    for (int r = 0; r < MR; r++) row[r] = a + (long)(r < rows ? r : 0) * lda;
    for (int p = 0; p < kb; p++) {
        __m512 b0, b1 = _mm512_setzero_ps(), b2 = b1;
        if (vectors == 1) b0 = _mm512_maskz_loadu_ps(b_mask, b);
        else b0 = _mm512_loadu_ps(b);
        if (vectors == 2) b1 = _mm512_maskz_loadu_ps(b_mask, b + 16);
        else if (vectors > 2) b1 = _mm512_loadu_ps(b + 16);
        if (vectors == 3) b2 = _mm512_maskz_loadu_ps(b_mask, b + 32);
        for (int r = 0; r < MR; r++) {
            __m512 x = _mm512_set1_ps(packed_a ? a[r] : row[r][p]);
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
            if (vectors > 1) acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
            if (vectors > 2) acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
        }
        if (packed_a) a += MR;
        b += b_depth;
    }
#define STORE_ROW(r)                                                                                     \
    if (r < rows)                                                                                        \
    store_row(vectors, acc[r][0], acc[r][1], acc[r][2], c + (long)(r) * ldc, last_mask, first, last,    \
              row_bias ? row_bias + (r) : 0, column_bias, relu)
    STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3);
    STORE_ROW(4); STORE_ROW(5); STORE_ROW(6); STORE_ROW(7);
}

#define TILE(vectors, packed, packed_b)                                                                              \
    tile(vectors, packed, packed_b, kb, ap, lda, bp, b_depth, cp, ldc, rows, columns, first, last, rb, cb, relu)
#define DISPATCH(packed, packed_b)                                                                          \
    do {                                                                                                   \
        if (vectors == 3) TILE(3, packed, packed_b);                                                      \
        else if (vectors == 2) TILE(2, packed, packed_b);                                                 \
        else TILE(1, packed, packed_b);                                                                   \
    } while (0)

AVX512 void sd_gemm(int m, int n, int k, const float *a, long lda, const float *b, long ldb, float *c, long ldc,
             int accumulate, const float *row_bias, const float *column_bias, int relu) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {  // an empty sum: zero (or C), then the epilogue
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float x = (accumulate ? c[(long)i * ldc + j] : 0.0f) + (row_bias ? row_bias[i] : 0.0f) +
                          (column_bias ? column_bias[j] : 0.0f);
                c[(long)i * ldc + j] = relu && !(x >= 0.0f) && x == x ? 0.0f : x;
            }
        return;
    }
    for (int p0 = 0; p0 < k; p0 += KC) {
        int kb = imin(KC, k - p0), first = p0 == 0 && !accumulate, last = p0 + kb >= k;
        for (int i1 = 0; i1 < m; i1 += MC) {
            int i1_end = imin(m, i1 + MC);
            for (int j0 = 0; j0 < n; j0 += NR) {
                int columns = imin(NR, n - j0), width = panel_width(columns), vectors = width / 16;
                const float *bp = ldb ? b + j0 + (long)p0 * ldb : b + (size_t)j0 * k + (size_t)p0 * width;
                long b_depth = ldb ? ldb : width;
                const float *cb = column_bias ? column_bias + j0 : 0;
                for (int i0 = i1; i0 < i1_end; i0 += MR) {
                    int rows = imin(MR, m - i0);
                    const float *ap = lda ? a + (long)i0 * lda + p0 : a + (size_t)i0 * k + (size_t)p0 * MR;
                    const float *rb = row_bias ? row_bias + i0 : 0;
                    float *cp = c + (long)i0 * ldc + j0;
                    if (lda && ldb) DISPATCH(0, 0);
                    else if (lda) DISPATCH(0, 1);
                    else if (ldb) DISPATCH(1, 0);
                    else DISPATCH(1, 1);
                }
            }
        }
    }
}

#else

int sd_avx512_available(void) { return 0; }

void sd_gemm(int m, int n, int k, const float *a, long lda, const float *b, long ldb, float *c, long ldc,
             int accumulate, const float *row_bias, const float *column_bias, int relu) {
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)c; (void)ldc;
    (void)accumulate; (void)row_bias; (void)column_bias; (void)relu;
}

#endif

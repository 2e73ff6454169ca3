// Single-precision matrix product with AVX-512 micro-kernels: tiles of 8 rows x 48 columns (24
// zmm accumulators), for operands packed once (a layer's weights) or read in place (row-major or
// transposed A, row-major B). The function attributes enable AVX-512 for these functions only.
#include "levels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define MR SD_AVX512_MR
#define NR SD_AVX512_NR
_Static_assert(MR == 8, "narrow_tile holds a tile's rows in one 8-lane vector");

/// Row `r` of a tile: on the last depth block the biases and ReLU, then stored under the masks.
/// Taking the accumulators by value with a literal row keeps them in registers.
INLINE AVX512 void store_row(const int vectors, __m512 x0, __m512 x1, __m512 x2, float *out, __mmask16 last_mask,
                             int last, const float *row_bias, const float *column_bias, const float *residual, int relu) {
    __m512 x[3] = {x0, x1, x2};
    for (int v = 0; v < vectors; v++) {
        __mmask16 mask = v == vectors - 1 ? last_mask : (__mmask16)0xFFFF;
        __m512 y = x[v];
        if (last) {
            if (row_bias) y = _mm512_add_ps(y, _mm512_set1_ps(*row_bias));
            if (column_bias) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, column_bias + 16 * v));
            if (residual) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, residual + 16 * v));
            // max(0, y) keeps NaN (the second operand wins when either is NaN), as Swift's max(y, 0).
            if (relu) y = _mm512_max_ps(_mm512_setzero_ps(), y);
        }
        _mm512_mask_storeu_ps(out + 16 * v, mask, y);
    }
}

/// One MR x (16 * vectors) tile of C over depth kb, its accumulators starting from C when
/// `load_c` (an earlier depth block, or accumulate), else from zero. A is packed (a + p * MR + r)
/// or strided (element (r, p) at a[r * a_rows + p * a_depth]; rows past an edge re-read row 0 and
/// are not stored); B row p is at b + p * b_depth. `rows` rows and `columns` columns of the last
/// vector are stored.
INLINE AVX512 void tile(const int vectors, const int packed_a, const int packed_b, int kb, const float *a, long a_rows,
                        long a_depth, const float *b, long b_depth, float *c, long ldc, int rows, int columns,
                        int load_c, int last, const float *row_bias, const float *column_bias, const float *residual,
                        long ldr, int relu) {
    int tail = columns - (vectors - 1) * 16;
    __mmask16 last_mask = (__mmask16)(tail >= 16 ? 0xFFFF : (1u << tail) - 1);
    __m512 acc[MR][3];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < 3; v++) {
            __mmask16 mask = v == vectors - 1 ? last_mask : (__mmask16)0xFFFF;
            acc[r][v] = load_c && r < rows && v < vectors ? _mm512_maskz_loadu_ps(mask, c + (long)r * ldc + 16 * v)
                                                            : _mm512_setzero_ps();
        }
    // The lines the stores will read and write, fetched while the depth loop runs: on a shallow
    // product (a 1x1 layer of 64 channels) the loop is short and they are rarely in cache yet.
    if (last)
        for (int r = 0; r < rows; r++)
            for (int v = 0; v < vectors; v++) {
                if (residual) _mm_prefetch((const char *)(residual + (long)r * ldr + 16 * v), _MM_HINT_T0);
                _mm_prefetch((const char *)(c + (long)r * ldc + 16 * v), _MM_HINT_T0);
            }
    // A packed B is zero-padded to whole vectors; a row-major one must not be read past its end.
    __mmask16 b_mask = packed_b ? (__mmask16)0xFFFF : last_mask;
    const float *row[MR];
    for (int r = 0; r < MR; r++) row[r] = a + (long)(r < rows ? r : 0) * a_rows;
    long offset = 0;
    for (int p = 0; p < kb; p++) {
        __m512 b0, b1 = _mm512_setzero_ps(), b2 = b1;
        if (vectors == 1) b0 = _mm512_maskz_loadu_ps(b_mask, b);
        else b0 = _mm512_loadu_ps(b);
        if (vectors == 2) b1 = _mm512_maskz_loadu_ps(b_mask, b + 16);
        else if (vectors > 2) b1 = _mm512_loadu_ps(b + 16);
        if (vectors == 3) b2 = _mm512_maskz_loadu_ps(b_mask, b + 32);
        // A packed A streams from memory on its first use (a layer's weights): fetch the line 48
        // depth steps ahead (1.5 KB), one line per two steps.
        if (packed_a && (p & 1) == 0) _mm_prefetch((const char *)(a + 48 * MR), _MM_HINT_T0);
        for (int r = 0; r < MR; r++) {
            __m512 x = _mm512_set1_ps(packed_a ? a[r] : row[r][offset]);
            acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
            if (vectors > 1) acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
            if (vectors > 2) acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
        }
        if (packed_a) a += MR;
        else offset += a_depth;
        b += b_depth;
    }
#define STORE_ROW(r)                                                                                         \
    if (r < rows)                                                                                            \
    store_row(vectors, acc[r][0], acc[r][1], acc[r][2], c + (long)(r) * ldc, last_mask, last,              \
              row_bias ? row_bias + (r) : 0, column_bias, residual ? residual + (long)(r) * ldr : 0, relu)
    STORE_ROW(0); STORE_ROW(1); STORE_ROW(2); STORE_ROW(3);
    STORE_ROW(4); STORE_ROW(5); STORE_ROW(6); STORE_ROW(7);
#undef STORE_ROW
}

/// A packed A's tile against at most 8 columns (a panel's few last ones): one 8-lane accumulator
/// per column holding the tile's 8 rows, one multiply-add of A's depth step (its 8 rows side by
/// side) per column and step, where ``tile`` spends a 16-lane multiply-add per row. Each element
/// is the same chain, so the same bits; the epilogue is ``store_row``'s, one element at a time.
INLINE AVX512 void narrow_tile(const int columns, int kb, const float *a, const float *b, long b_depth, float *c,
                               long ldc, int rows, int load_c, int last, const float *row_bias,
                               const float *column_bias, const float *residual, long ldr, int relu) {
    float t[8][8];
    __m256 acc[8];
    for (int j = 0; j < columns; j++) {
        for (int r = 0; r < MR; r++) t[j][r] = load_c && r < rows ? c[(long)r * ldc + j] : 0.0f;
        acc[j] = _mm256_loadu_ps(t[j]);
    }
    for (int p = 0; p < kb; p++) {
        __m256 x = _mm256_loadu_ps(a);
        for (int j = 0; j < columns; j++) acc[j] = _mm256_fmadd_ps(x, _mm256_broadcast_ss(b + j), acc[j]);
        a += MR;
        b += b_depth;
    }
    for (int j = 0; j < columns; j++) _mm256_storeu_ps(t[j], acc[j]);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < columns; j++) {
            float y = t[j][r];
            if (last) {
                if (row_bias) y += row_bias[r];
                if (column_bias) y += column_bias[j];
                if (residual) y += residual[(long)r * ldr + j];
                if (relu) y = 0.0f > y ? 0.0f : y;
            }
            c[(long)r * ldc + j] = y;
        }
}

#define TILE(vectors, packed, packed_b)                                                                       \
    tile(vectors, packed, packed_b, kb, ap, p->a_row_stride, p->a_depth_stride, bp, b_depth, cp, p->ldc, rows, \
         columns, load_c, last, rb, cb, res, p->ldr, p->relu)
#define DISPATCH(packed, packed_b)                                                                            \
    do {                                                                                                     \
        if (vectors == 3) TILE(3, packed, packed_b);                                                         \
        else if (vectors == 2) TILE(2, packed, packed_b);                                                    \
        else TILE(1, packed, packed_b);                                                                      \
    } while (0)

AVX512 void sd_gemm_avx512(const sd_gemm_problem *p) {
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
                int columns = sd_imin(NR, n - j0), width = sd_panel_width(columns, NR, 16), vectors = width / 16;
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
                    if (packed_a && columns <= 8) {
                        switch (columns) {
#define NARROW(j) case j: narrow_tile(j, kb, ap, bp, b_depth, cp, p->ldc, rows, load_c, last, rb, cb, res, p->ldr, p->relu); break;
                            NARROW(1) NARROW(2) NARROW(3) NARROW(4) NARROW(5) NARROW(6) NARROW(7) NARROW(8)
#undef NARROW
                        }
                    } else if (!packed_a && !packed_b) DISPATCH(0, 0);
                    else if (!packed_a) DISPATCH(0, 1);
                    else if (!packed_b) DISPATCH(1, 0);
                    else DISPATCH(1, 1);
                }
            }
        }
    }
}

#endif

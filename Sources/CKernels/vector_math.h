// Float32 exp and erf in sixteen (AVX-512) and eight (AVX2 + FMA) lanes for the element-wise
// kernels (internal to this target). Both widths run the same operations in the same order per
// lane, so they give the same bits; sums across lanes go through one fixed tree (sum16). Also
// the lane masks, edge-masked loads and stores and the even/odd split that the Winograd and
// pooling kernels share.
#ifndef SHORTCUTDETECT_VECTOR_MATH_H
#define SHORTCUTDETECT_VECTOR_MATH_H

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))
#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

/// Cephes' expf reduction and polynomial constants, and the rational erf's (Float.erf in GraphEngine).
#define EXP_LOWEST -87.33654f
#define LOG2E 1.44269504088896341f
#define LN2_HIGH 0.693359375f
#define LN2_LOW -2.12194440e-4f
static const float exp_poly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                  4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
static const float erf_p[7] = {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f,
                               -5.69250639462346e-05f, -7.34990630326855e-04f, -2.95459980854025e-03f,
                               -1.60960333262415e-02f};
static const float erf_q[5] = {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f,
                               -7.37332916720468e-03f, -1.42647390514189e-02f};

/// e^x for x <= 0 (NaN stays NaN, x below the float range gives 0).
INLINE AVX512 __m512 exp16(__m512 v) {
    __mmask16 underflow = _mm512_cmp_ps_mask(v, _mm512_set1_ps(EXP_LOWEST), _CMP_LT_OQ);
    __m512 x = _mm512_max_ps(_mm512_set1_ps(EXP_LOWEST), v);  // NaN wins as the second operand
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HIGH), x);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LOW), x);
    __m512 p = _mm512_set1_ps(exp_poly[0]);
    for (int i = 1; i < 6; i++) p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(exp_poly[i]));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps((__mmask16)~underflow, _mm512_scalef_ps(p, n));
}

/// exp16 in eight lanes. n is an integer in [-126, 0] (or NaN, where p is NaN too), so p * 2^n,
/// one rounding of the exact product, is what scalef gives.
INLINE AVX2 __m256 exp8(__m256 v) {
    __m256 underflow = _mm256_cmp_ps(v, _mm256_set1_ps(EXP_LOWEST), _CMP_LT_OQ);
    __m256 x = _mm256_max_ps(_mm256_set1_ps(EXP_LOWEST), v);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HIGH), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LOW), x);
    __m256 p = _mm256_set1_ps(exp_poly[0]);
    for (int i = 1; i < 6; i++) p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(exp_poly[i]));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(exponent)));
}

/// erf by the rational approximation on [-4, 4] of the Swift kernel (Float.erf in GraphEngine).
INLINE AVX512 __m512 erf16(__m512 v) {
    // max(-4, v) then min(4, ·): the second operand wins on NaN, so NaN passes through.
    __m512 x = _mm512_min_ps(_mm512_set1_ps(4.0f), _mm512_max_ps(_mm512_set1_ps(-4.0f), v));
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(erf_p[0]), q = _mm512_set1_ps(erf_q[0]);
    for (int i = 1; i < 7; i++) p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(erf_p[i]));
    for (int i = 1; i < 5; i++) q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(erf_q[i]));
    return _mm512_div_ps(_mm512_mul_ps(x, p), q);
}

/// erf16 in eight lanes.
INLINE AVX2 __m256 erf8(__m256 v) {
    __m256 x = _mm256_min_ps(_mm256_set1_ps(4.0f), _mm256_max_ps(_mm256_set1_ps(-4.0f), v));
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(erf_p[0]), q = _mm256_set1_ps(erf_q[0]);
    for (int i = 1; i < 7; i++) p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(erf_p[i]));
    for (int i = 1; i < 5; i++) q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(erf_q[i]));
    return _mm256_div_ps(_mm256_mul_ps(x, p), q);
}

/// The sum of sixteen lanes held as two halves (lanes 0-7 in `low`, 8-15 in `high`) by one fixed
/// tree: halves, then quarters, then pairs.
INLINE AVX2 float sum16(__m256 low, __m256 high) {
    __m256 s8 = _mm256_add_ps(low, high);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

/// The sum of eight doubles held as two halves (lanes 0-3 in `low`, 4-7 in `high`) by one fixed
/// tree: halves, then pairs.
INLINE AVX2 double sum8d(__m256d low, __m256d high) {
    __m256d s4 = _mm256_add_pd(low, high);
    __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
}

/// The largest of sixteen lanes held as two halves, by sum16's tree (max(a, b) gives b when
/// either is NaN).
INLINE AVX2 float max16(__m256 low, __m256 high) {
    __m256 s8 = _mm256_max_ps(low, high);
    __m128 s4 = _mm_max_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_max_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_max_ss(s2, _mm_movehdup_ps(s2)));
}

/// The lower and upper four lanes of a zmm register of doubles.
INLINE AVX512 __m256d low4d(__m512d v) { return _mm512_castpd512_pd256(v); }
INLINE AVX512 __m256d high4d(__m512d v) { return _mm512_extractf64x4_pd(v, 1); }

/// The lower and upper eight lanes of a zmm register.
INLINE AVX512 __m256 low8(__m512 v) { return _mm512_castps512_ps256(v); }
INLINE AVX512 __m256 high8(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

/// All lanes below `count` set (the sign bit is what AVX2's masked loads and stores read).
INLINE AVX2 __m256i lanes_below8(long count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(count < 8 ? count : 8)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Lanes 0..count-1 of a 16-lane mask (count <= 16).
INLINE __mmask16 lanes_below16(long count) { return (__mmask16)(count >= 16 ? 0xFFFF : (1u << count) - 1); }

/// The 16 floats row[start + k], k = 0..15, zero where start + k is outside [0, width).
INLINE AVX512 __m512 load16(const float *row, int start, int width) {
    int first = start < 0 ? -start : 0;
    int last = width - start;  // lanes >= last are outside
    if (first >= 16 || last <= 0) return _mm512_setzero_ps();
    __mmask16 mask = (__mmask16)(lanes_below16(last > 16 ? 16 : last) & ~lanes_below16(first));
    return _mm512_maskz_loadu_ps(mask, row + start);
}

/// The 8 floats row[start + k], k = 0..7, zero where start + k is outside [0, width).
INLINE AVX2 __m256 load8(const float *row, int start, int width) {
    int first = start < 0 ? -start : 0;
    int last = width - start;  // lanes >= last are outside
    if (first >= 8 || last <= 0) return _mm256_setzero_ps();
    if (first == 0 && last >= 8) return _mm256_loadu_ps(row + start);
    return _mm256_maskload_ps(row + start, _mm256_andnot_si256(lanes_below8(first), lanes_below8(last)));
}

/// Stores the first `count` lanes of x.
INLINE AVX2 void store8(float *to, __m256 x, int count) {
    if (count >= 8) _mm256_storeu_ps(to, x);
    else if (count > 0) _mm256_maskstore_ps(to, lanes_below8(count), x);
}

/// The even (odd when `odd`) elements of the sixteen floats a0, a1.
INLINE AVX2 __m256 deinterleave(__m256 a0, __m256 a1, const int odd) {
    // Per 128-bit lane: a0[0] a0[2] a1[0] a1[2] | a0[4] a0[6] a1[4] a1[6]; then the 64-bit pairs in order.
    __m256 pairs = odd ? _mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)) : _mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(pairs), _MM_SHUFFLE(3, 1, 2, 0)));
}

#endif

#endif

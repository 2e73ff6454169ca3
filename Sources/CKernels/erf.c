// Element-wise erf and GELU with AVX-512, the same rational approximation as the Swift kernel
// (Float.erf in GraphEngine), sixteen lanes at a time with fused multiply-adds.
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

static inline __attribute__((always_inline)) AVX512 __m512 erf16(__m512 v) {
    // max(-4, v) then min(4, ·): the second operand wins on NaN, so NaN passes through.
    __m512 x = _mm512_min_ps(_mm512_set1_ps(4.0f), _mm512_max_ps(_mm512_set1_ps(-4.0f), v));
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-2.72614225801306e-10f);
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.77068142495902e-08f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.10102402082508e-06f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-5.69250639462346e-05f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-7.34990630326855e-04f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.95459980854025e-03f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-1.60960333262415e-02f));
    __m512 q = _mm512_set1_ps(-1.45660718464996e-05f);
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-2.13374055278905e-04f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.68282697438203e-03f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-7.37332916720468e-03f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.42647390514189e-02f));
    return _mm512_div_ps(_mm512_mul_ps(x, p), q);
}

static inline __attribute__((always_inline)) AVX512 __m512 gelu16(__m512 v) {
    __m512 e = erf16(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752440f)));
    return _mm512_mul_ps(_mm512_mul_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), _mm512_set1_ps(0.5f));
}

#define MAP16(name, f)                                                                 \
    AVX512 void name(const float *x, float *y, long count) {                          \
        long i = 0;                                                                    \
        for (; i + 16 <= count; i += 16) _mm512_storeu_ps(y + i, f(_mm512_loadu_ps(x + i))); \
        if (i < count) {                                                               \
            __mmask16 mask = (__mmask16)((1u << (count - i)) - 1);                     \
            _mm512_mask_storeu_ps(y + i, mask, f(_mm512_maskz_loadu_ps(mask, x + i)));   \
        }                                                                              \
    }

MAP16(sd_erf, erf16)
MAP16(sd_gelu, gelu16)

#else

void sd_erf(const float *x, float *y, long count) { (void)x; (void)y; (void)count; }
void sd_gelu(const float *x, float *y, long count) { (void)x; (void)y; (void)count; }

#endif

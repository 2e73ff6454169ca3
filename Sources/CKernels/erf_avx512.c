// Element-wise erf and GELU, forward and backward, sixteen lanes at a time with AVX-512.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"

INLINE AVX512 __m512 gelu16(__m512 v) {
    __m512 e = erf16(_mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752440f)));
    return _mm512_mul_ps(_mm512_mul_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), _mm512_set1_ps(0.5f));
}

/// d erf(x) / dx = 2/sqrt(pi) exp(-x^2); d GELU(x) / dx = Phi(x) + x phi(x).
INLINE AVX512 __m512 erf_slope16(__m512 x) {
    return _mm512_mul_ps(_mm512_set1_ps(1.12837916709551257390f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(x, x))));
}
INLINE AVX512 __m512 gelu_slope16(__m512 x) {
    __m512 cdf = _mm512_mul_ps(_mm512_add_ps(_mm512_set1_ps(1.0f), erf16(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f)))),
                               _mm512_set1_ps(0.5f));
    __m512 pdf = _mm512_mul_ps(_mm512_set1_ps(0.39894228040143267794f),
                               exp16(_mm512_mul_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(-0.5f))));
    return _mm512_fmadd_ps(x, pdf, cdf);
}

/// y = f(x), sixteen lanes at a time, the tail under a mask.
#define MAP16(name, f)                                                                            \
    AVX512 void name(const float *x, float *y, long count) {                                     \
        long i = 0;                                                                               \
        for (; i + 16 <= count; i += 16) _mm512_storeu_ps(y + i, f(_mm512_loadu_ps(x + i)));       \
        if (i < count) {                                                                          \
            __mmask16 mask = lanes_below16(count - i);                                            \
            _mm512_mask_storeu_ps(y + i, mask, f(_mm512_maskz_loadu_ps(mask, x + i)));             \
        }                                                                                         \
    }

/// out = g * slope(x).
#define BACKWARD16(name, slope)                                                                   \
    AVX512 void name(const float *x, const float *g, float *out, long count) {                   \
        for (long i = 0; i < count; i += 16) {                                                    \
            __mmask16 mask = lanes_below16(count - i);                                            \
            __m512 s = slope(_mm512_maskz_loadu_ps(mask, x + i));                                 \
            _mm512_mask_storeu_ps(out + i, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, g + i), s)); \
        }                                                                                         \
    }

MAP16(sd_erf_avx512, erf16)
MAP16(sd_gelu_avx512, gelu16)
BACKWARD16(sd_erf_backward_avx512, erf_slope16)
BACKWARD16(sd_gelu_backward_avx512, gelu_slope16)

AVX512 void sd_gelu_chain_avx512(const float *x, float *y, long count, float divisor, float one, float half) {
    __m512 c = _mm512_set1_ps(divisor), a = _mm512_set1_ps(one), h = _mm512_set1_ps(half);
    for (long i = 0; i < count; i += 16) {
        __mmask16 mask = lanes_below16(count - i);
        __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
        __m512 e = _mm512_add_ps(erf16(_mm512_div_ps(v, c)), a);
        _mm512_mask_storeu_ps(y + i, mask, _mm512_mul_ps(_mm512_mul_ps(v, e), h));
    }
}

#endif

// Element-wise erf and GELU, forward and backward, eight lanes at a time with AVX2 + FMA: the
// AVX-512 kernels' operations lane for lane (erf_avx512.c), so the same bits.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"

INLINE AVX2 __m256 gelu8(__m256 v) {
    __m256 e = erf8(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752440f)));
    return _mm256_mul_ps(_mm256_mul_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), _mm256_set1_ps(0.5f));
}

INLINE AVX2 __m256 erf_slope8(__m256 x) {
    return _mm256_mul_ps(_mm256_set1_ps(1.12837916709551257390f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(x, x))));
}
INLINE AVX2 __m256 gelu_slope8(__m256 x) {
    __m256 cdf = _mm256_mul_ps(_mm256_add_ps(_mm256_set1_ps(1.0f), erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752440f)))),
                               _mm256_set1_ps(0.5f));
    __m256 pdf = _mm256_mul_ps(_mm256_set1_ps(0.39894228040143267794f),
                               exp8(_mm256_mul_ps(_mm256_mul_ps(x, x), _mm256_set1_ps(-0.5f))));
    return _mm256_fmadd_ps(x, pdf, cdf);
}

/// y = f(x), eight lanes at a time, the tail under a mask.
#define MAP8(name, f)                                                                             \
    AVX2 void name(const float *x, float *y, long count) {                                       \
        long i = 0;                                                                               \
        for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, f(_mm256_loadu_ps(x + i)));         \
        if (i < count) {                                                                          \
            __m256i mask = lanes_below8(count - i);                                               \
            _mm256_maskstore_ps(y + i, mask, f(_mm256_maskload_ps(x + i, mask)));                  \
        }                                                                                         \
    }

/// out = g * slope(x).
#define BACKWARD8(name, slope)                                                                    \
    AVX2 void name(const float *x, const float *g, float *out, long count) {                     \
        long i = 0;                                                                               \
        for (; i + 8 <= count; i += 8)                                                            \
            _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(g + i), slope(_mm256_loadu_ps(x + i)))); \
        if (i < count) {                                                                          \
            __m256i mask = lanes_below8(count - i);                                               \
            __m256 s = slope(_mm256_maskload_ps(x + i, mask));                                    \
            _mm256_maskstore_ps(out + i, mask, _mm256_mul_ps(_mm256_maskload_ps(g + i, mask), s)); \
        }                                                                                         \
    }

MAP8(sd_erf_avx2, erf8)
MAP8(sd_gelu_avx2, gelu8)
BACKWARD8(sd_erf_backward_avx2, erf_slope8)
BACKWARD8(sd_gelu_backward_avx2, gelu_slope8)

AVX2 void sd_gelu_chain_avx2(const float *x, float *y, long count, float divisor, float one, float half) {
    __m256 c = _mm256_set1_ps(divisor), a = _mm256_set1_ps(one), h = _mm256_set1_ps(half);
#define CHAIN(v) _mm256_mul_ps(_mm256_mul_ps(v, _mm256_add_ps(erf8(_mm256_div_ps(v, c)), a)), h)
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(y + i, CHAIN(v));
    }
    if (i < count) {
        __m256i mask = lanes_below8(count - i);
        __m256 v = _mm256_maskload_ps(x + i, mask);
        _mm256_maskstore_ps(y + i, mask, CHAIN(v));
    }
#undef CHAIN
}

#endif

// Element-wise erf and GELU, forward and backward, with AVX-512: the rational erf of the Swift
// kernel (Float.erf in GraphEngine) and the softmax kernel's exp, sixteen lanes at a time.
#include "CKernels.h"

#if defined(__x86_64__)
#include "vector_math.h"

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

AVX512 void sd_gelu_chain(const float *x, float *y, long count, float divisor, float one, float half) {
    __m512 c = _mm512_set1_ps(divisor), a = _mm512_set1_ps(one), h = _mm512_set1_ps(half);
    long i = 0;
    for (; i <= count; i += 16) {
        __mmask16 mask = (__mmask16)(count - i >= 16 ? 0xFFFF : (1u << (count - i)) - 1);
        if (!mask) break;
        __m512 v = _mm512_maskz_loadu_ps(mask, x + i);
        __m512 e = _mm512_add_ps(erf16(_mm512_div_ps(v, c)), a);
        _mm512_mask_storeu_ps(y + i, mask, _mm512_mul_ps(_mm512_mul_ps(v, e), h));
    }
}

/// d erf(x) / dx = 2/sqrt(pi) exp(-x^2); d GELU(x) / dx = Phi(x) + x phi(x).
static inline __attribute__((always_inline)) AVX512 __m512 erf_slope16(__m512 x) {
    return _mm512_mul_ps(_mm512_set1_ps(1.12837916709551257390f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(x, x))));
}
static inline __attribute__((always_inline)) AVX512 __m512 gelu_slope16(__m512 x) {
    __m512 cdf = _mm512_mul_ps(_mm512_add_ps(_mm512_set1_ps(1.0f), erf16(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752440f)))),
                               _mm512_set1_ps(0.5f));
    __m512 pdf = _mm512_mul_ps(_mm512_set1_ps(0.39894228040143267794f),
                               exp16(_mm512_mul_ps(_mm512_mul_ps(x, x), _mm512_set1_ps(-0.5f))));
    return _mm512_fmadd_ps(x, pdf, cdf);
}

#define BACKWARD16(name, slope)                                                                    \
    AVX512 void name(const float *x, const float *g, float *out, long count) {                     \
        long i = 0;                                                                                \
        for (; i + 16 <= count; i += 16)                                                           \
            _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_loadu_ps(g + i), slope(_mm512_loadu_ps(x + i)))); \
        if (i < count) {                                                                           \
            __mmask16 mask = (__mmask16)((1u << (count - i)) - 1);                                 \
            __m512 s = slope(_mm512_maskz_loadu_ps(mask, x + i));                                  \
            _mm512_mask_storeu_ps(out + i, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, g + i), s)); \
        }                                                                                          \
    }

BACKWARD16(sd_erf_backward, erf_slope16)
BACKWARD16(sd_gelu_backward, gelu_slope16)

#else

void sd_erf(const float *x, float *y, long count) { (void)x; (void)y; (void)count; }
void sd_gelu(const float *x, float *y, long count) { (void)x; (void)y; (void)count; }
void sd_gelu_chain(const float *x, float *y, long count, float divisor, float one, float half) {
    (void)x; (void)y; (void)count; (void)divisor; (void)one; (void)half;
}
void sd_erf_backward(const float *x, const float *g, float *out, long count) { (void)x; (void)g; (void)out; (void)count; }
void sd_gelu_backward(const float *x, const float *g, float *out, long count) { (void)x; (void)g; (void)out; (void)count; }

#endif

// Softmax over contiguous rows with AVX-512: exp by Cephes' expf reduction and polynomial,
// sixteen lanes at a time, so attention's softmax stops paying one libm call per element.
#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>

#define AVX512 __attribute__((target("avx512f")))

/// e^x for x <= 0 (NaN stays NaN, x below the float range gives 0).
static inline __attribute__((always_inline)) AVX512 __m512 exp16(__m512 v) {
    __mmask16 underflow = _mm512_cmp_ps_mask(v, _mm512_set1_ps(-87.33654f), _CMP_LT_OQ);
    __m512 x = _mm512_max_ps(_mm512_set1_ps(-87.33654f), v);  // NaN wins as the second operand
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps((__mmask16)~underflow, _mm512_scalef_ps(p, n));
}

AVX512 void sd_softmax_rows(const float *x, float *y, long rows, long extent) {
    __mmask16 tail = (__mmask16)((1u << (extent % 16)) - 1);
    long whole = extent / 16 * 16;
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * extent;
        float *out = y + r * extent;
        __m512 largest = _mm512_set1_ps(-INFINITY);
        for (long i = 0; i < whole; i += 16) largest = _mm512_max_ps(largest, _mm512_loadu_ps(in + i));
        if (tail) largest = _mm512_mask_max_ps(largest, tail, largest, _mm512_maskz_loadu_ps(tail, in + whole));
        float top = _mm512_reduce_max_ps(largest);
        if (top == -INFINITY) top = 0;
        __m512 shift = _mm512_set1_ps(top), sum = _mm512_setzero_ps();
        for (long i = 0; i < whole; i += 16) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(in + i), shift));
            _mm512_storeu_ps(out + i, e);
            sum = _mm512_add_ps(sum, e);
        }
        if (tail) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, in + whole), shift));
            _mm512_mask_storeu_ps(out + whole, tail, e);
            sum = _mm512_mask_add_ps(sum, tail, sum, e);
        }
        __m512 total = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
        for (long i = 0; i < whole; i += 16) _mm512_storeu_ps(out + i, _mm512_div_ps(_mm512_loadu_ps(out + i), total));
        if (tail) _mm512_mask_storeu_ps(out + whole, tail, _mm512_div_ps(_mm512_maskz_loadu_ps(tail, out + whole), total));
    }
}

#else

void sd_softmax_rows(const float *x, float *y, long rows, long extent) { (void)x; (void)y; (void)rows; (void)extent; }

#endif

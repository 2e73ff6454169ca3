// Softmax over contiguous rows with AVX-512: exp by Cephes' expf reduction and polynomial,
// sixteen lanes at a time, so attention's softmax stops paying one libm call per element.
#include "CKernels.h"

#if defined(__x86_64__)
#include "vector_math.h"
#include <math.h>

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

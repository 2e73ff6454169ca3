// Softmax over contiguous rows with AVX-512: exp by Cephes' expf reduction and polynomial,
// sixteen lanes at a time, so attention's softmax stops paying one libm call per element.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"
#include <math.h>

AVX512 void sd_softmax_rows_avx512(const float *x, float *y, long rows, long extent) {
    long whole = extent / 16 * 16;
    __mmask16 tail = lanes_below16(extent - whole);
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * extent;
        float *out = y + r * extent;
        __m512 largest = _mm512_set1_ps(-INFINITY);
        for (long i = 0; i < whole; i += 16) largest = _mm512_max_ps(largest, _mm512_loadu_ps(in + i));
        if (tail) largest = _mm512_mask_max_ps(largest, tail, largest, _mm512_maskz_loadu_ps(tail, in + whole));
        float top = max16(low8(largest), high8(largest));
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
        __m512 total = _mm512_set1_ps(sum16(low8(sum), high8(sum)));
        for (long i = 0; i < whole; i += 16) _mm512_storeu_ps(out + i, _mm512_div_ps(_mm512_loadu_ps(out + i), total));
        if (tail) _mm512_mask_storeu_ps(out + whole, tail, _mm512_div_ps(_mm512_maskz_loadu_ps(tail, out + whole), total));
    }
}

#endif

// Softmax over contiguous rows with AVX2 + FMA: the AVX-512 kernel (softmax_avx512.c) with each
// sixteen-lane vector held as two halves, so the row maxima and sums, and the results, are the
// same bits.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"
#include <math.h>

AVX2 void sd_softmax_rows_avx2(const float *x, float *y, long rows, long extent) {
    long whole = extent / 16 * 16, rest = extent - whole;
    // The last, partial sixteen-lane block as two masks of eight.
    __m256i tail_low = lanes_below8(rest), tail_high = lanes_below8(rest - 8);
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * extent;
        float *out = y + r * extent;
        __m256 low = _mm256_set1_ps(-INFINITY), high = low;
        for (long i = 0; i < whole; i += 16) {
            low = _mm256_max_ps(low, _mm256_loadu_ps(in + i));
            high = _mm256_max_ps(high, _mm256_loadu_ps(in + i + 8));
        }
        if (rest) {
            __m256 a = _mm256_maskload_ps(in + whole, tail_low), b = _mm256_maskload_ps(in + whole + 8, tail_high);
            low = _mm256_blendv_ps(low, _mm256_max_ps(low, a), _mm256_castsi256_ps(tail_low));
            high = _mm256_blendv_ps(high, _mm256_max_ps(high, b), _mm256_castsi256_ps(tail_high));
        }
        float top = max16(low, high);
        if (top == -INFINITY) top = 0;
        __m256 shift = _mm256_set1_ps(top);
        low = high = _mm256_setzero_ps();
        for (long i = 0; i < whole; i += 16) {
            __m256 a = exp8(_mm256_sub_ps(_mm256_loadu_ps(in + i), shift));
            __m256 b = exp8(_mm256_sub_ps(_mm256_loadu_ps(in + i + 8), shift));
            _mm256_storeu_ps(out + i, a);
            _mm256_storeu_ps(out + i + 8, b);
            low = _mm256_add_ps(low, a);
            high = _mm256_add_ps(high, b);
        }
        if (rest) {
            __m256 a = exp8(_mm256_sub_ps(_mm256_maskload_ps(in + whole, tail_low), shift));
            __m256 b = exp8(_mm256_sub_ps(_mm256_maskload_ps(in + whole + 8, tail_high), shift));
            _mm256_maskstore_ps(out + whole, tail_low, a);
            _mm256_maskstore_ps(out + whole + 8, tail_high, b);
            // Lanes past the row add nothing (sum + 0 is sum, NaN included).
            low = _mm256_add_ps(low, _mm256_and_ps(a, _mm256_castsi256_ps(tail_low)));
            high = _mm256_add_ps(high, _mm256_and_ps(b, _mm256_castsi256_ps(tail_high)));
        }
        __m256 total = _mm256_set1_ps(sum16(low, high));
        long i = 0;
        for (; i + 8 <= extent; i += 8) _mm256_storeu_ps(out + i, _mm256_div_ps(_mm256_loadu_ps(out + i), total));
        if (i < extent) {
            __m256i mask = lanes_below8(extent - i);
            _mm256_maskstore_ps(out + i, mask, _mm256_div_ps(_mm256_maskload_ps(out + i, mask), total));
        }
    }
}

#endif

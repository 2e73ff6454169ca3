// Max pooling along an output row with AVX2: eight outputs per vector, the AVX-512 kernel's
// taps and comparisons (pool_avx512.c), so the same bits.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"

/// Lanes j = 0..7 of at[j], zero where j >= readable.
INLINE AVX2 __m256 load8_below(const float *at, long readable) {
    if (readable >= 8) return _mm256_loadu_ps(at);
    if (readable <= 0) return _mm256_setzero_ps();
    return _mm256_maskload_ps(at, lanes_below8((int)readable));
}

/// Lanes j = 0..7 of at[stride * j] (stride 1 or 2), zero where stride * j >= readable.
INLINE AVX2 __m256 taps8(const float *at, long readable, int stride) {
    if (stride == 1) return load8_below(at, readable);
    __m256 low = load8_below(at, readable), high = load8_below(at + 8, readable - 8);
    // Evens of each 128-bit half side by side ([l0 l2 h0 h2 | l4 l6 h4 h6]), then the halves' pairs in order.
    __m256 mixed = _mm256_shuffle_ps(low, high, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(mixed), _MM_SHUFFLE(3, 1, 2, 0)));
}

AVX2 void sd_max_pool_row_avx2(const float *src, long row_step, int rows, int kernel, int stride, long readable,
                               float *out, int count) {
    for (int j0 = 0; j0 < count; j0 += 8) {
        int n = count - j0 < 8 ? count - j0 : 8;
        long offset = (long)j0 * stride;
        __m256 best = taps8(src + offset, readable - offset, stride);
        for (int r = 0; r < rows; r++)
            for (int t = r == 0 ? 1 : 0; t < kernel; t++)
                best = _mm256_max_ps(taps8(src + r * row_step + offset + t, readable - offset - t, stride), best);
        if (n == 8) _mm256_storeu_ps(out + j0, best);
        else _mm256_maskstore_ps(out + j0, lanes_below8(n), best);
    }
}

#endif

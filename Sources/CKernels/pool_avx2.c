// Max pooling along an output row with AVX2: eight outputs per vector, the AVX-512 kernel's
// taps and comparisons (pool_avx512.c), so the same bits.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"

/// Lanes j = 0..7 of at[stride * j] (stride 1 or 2), zero where stride * j >= readable.
INLINE AVX2 __m256 taps8(const float *at, int readable, int stride) {
    if (stride == 1) return load8(at, 0, readable);
    return deinterleave(load8(at, 0, readable), load8(at, 8, readable), 0);
}

AVX2 void sd_max_pool_row_avx2(const float *src, long row_step, int rows, int kernel, int stride, long readable,
                               float *out, int count) {
    for (int j0 = 0; j0 < count; j0 += 8) {
        int n = count - j0 < 8 ? count - j0 : 8;
        long offset = (long)j0 * stride;
        __m256 best = taps8(src + offset, (int)(readable - offset), stride);
        for (int r = 0; r < rows; r++)
            for (int t = r == 0 ? 1 : 0; t < kernel; t++)
                best = _mm256_max_ps(taps8(src + r * row_step + offset + t, (int)(readable - offset - t), stride), best);
        store8(out + j0, best, n);
    }
}

#endif

// Max pooling along an output row with AVX-512: sixteen outputs per vector, stride-2 taps split
// out of two contiguous loads by one permute, masked loads at the row's end and a masked store
// for the row's last outputs.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"

/// Lanes j = 0..15 of at[stride * j] (stride 1 or 2), zero where stride * j >= readable.
INLINE AVX512 __m512 taps16(const float *at, int readable, int stride) {
    if (stride == 1) return load16(at, 0, readable);
    const __m512i evens = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_ps(load16(at, 0, readable), evens, load16(at, 16, readable));
}

AVX512 void sd_max_pool_row_avx512(const float *src, long row_step, int rows, int kernel, int stride, long readable,
                                   float *out, int count) {
    for (int j0 = 0; j0 < count; j0 += 16) {
        int n = count - j0 < 16 ? count - j0 : 16;
        long offset = (long)j0 * stride;
        // max(value, best) is `value > best ? value : best`, NaN in either giving best: the
        // scalar loop's comparison, taps in its order.
        __m512 best = taps16(src + offset, (int)(readable - offset), stride);
        for (int r = 0; r < rows; r++)
            for (int t = r == 0 ? 1 : 0; t < kernel; t++)
                best = _mm512_max_ps(taps16(src + r * row_step + offset + t, (int)(readable - offset - t), stride), best);
        _mm512_mask_storeu_ps(out + j0, lanes_below16(n), best);
    }
}

#endif

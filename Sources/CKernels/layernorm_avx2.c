// Layer normalization over contiguous rows with AVX2: the AVX-512 kernel (layernorm_avx512.c)
// with each eight-lane vector of doubles held as two halves, so the statistics, and the results,
// are the same bits.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"
#include <math.h>

// The tails round each multiply and add as the vector loops do.
#pragma STDC FP_CONTRACT OFF

AVX2 void sd_layer_norm_rows_avx2(const float *x, float *y, long rows, long size, const float *gamma,
                                  const float *beta, double epsilon, float *means, float *inverses) {
    long whole = size / 8 * 8;
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * size;
        float *out = y + r * size;
        __m256d low = _mm256_setzero_pd(), high = low;
        for (long i = 0; i < whole; i += 8) {
            low = _mm256_add_pd(low, _mm256_cvtps_pd(_mm_loadu_ps(in + i)));
            high = _mm256_add_pd(high, _mm256_cvtps_pd(_mm_loadu_ps(in + i + 4)));
        }
        double total = sum8d(low, high);
        for (long i = whole; i < size; i++) total += in[i];
        double mean = total / (double)size;
        __m256d center = _mm256_set1_pd(mean), square_low = _mm256_setzero_pd(), square_high = square_low;
        for (long i = 0; i < whole; i += 8) {
            __m256d d_low = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(in + i)), center);
            __m256d d_high = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(in + i + 4)), center);
            square_low = _mm256_add_pd(square_low, _mm256_mul_pd(d_low, d_low));
            square_high = _mm256_add_pd(square_high, _mm256_mul_pd(d_high, d_high));
        }
        double square_total = sum8d(square_low, square_high);
        for (long i = whole; i < size; i++) square_total += (in[i] - mean) * (in[i] - mean);
        double inverse = 1.0 / sqrt(square_total / (double)size + epsilon);
        means[r] = (float)mean;
        inverses[r] = (float)inverse;
        __m256d scale = _mm256_set1_pd(inverse);
        for (long i = 0; i < whole; i += 8) {
            __m128 n_low = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(in + i)), center), scale));
            __m128 n_high =
                _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(in + i + 4)), center), scale));
            __m256 normalized = _mm256_set_m128(n_high, n_low);
            __m256 scaled = _mm256_mul_ps(normalized, _mm256_loadu_ps(gamma + i));
            _mm256_storeu_ps(out + i, _mm256_add_ps(scaled, _mm256_loadu_ps(beta + i)));
        }
        for (long i = whole; i < size; i++) out[i] = (float)((in[i] - mean) * inverse) * gamma[i] + beta[i];
    }
}

#endif

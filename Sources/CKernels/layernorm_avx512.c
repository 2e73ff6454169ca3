// Layer normalization over contiguous rows with AVX-512: each row's mean and variance summed in
// double precision in eight lanes (one zmm of doubles per eight floats), reduced by sum8d's fixed
// tree, then every value normalized in double, rounded to float, scaled and shifted.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"
#include <math.h>

// The tails round each multiply and add as the vector loops do.
#pragma STDC FP_CONTRACT OFF

AVX512 void sd_layer_norm_rows_avx512(const float *x, float *y, long rows, long size, const float *gamma,
                                      const float *beta, double epsilon, float *means, float *inverses) {
    long whole = size / 8 * 8;
    for (long r = 0; r < rows; r++) {
        const float *in = x + r * size;
        float *out = y + r * size;
        __m512d sum = _mm512_setzero_pd();
        for (long i = 0; i < whole; i += 8) sum = _mm512_add_pd(sum, _mm512_cvtps_pd(_mm256_loadu_ps(in + i)));
        double total = sum8d(low4d(sum), high4d(sum));
        for (long i = whole; i < size; i++) total += in[i];
        double mean = total / (double)size;
        __m512d center = _mm512_set1_pd(mean), squares = _mm512_setzero_pd();
        for (long i = 0; i < whole; i += 8) {
            __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(in + i)), center);
            squares = _mm512_add_pd(squares, _mm512_mul_pd(d, d));
        }
        double square_total = sum8d(low4d(squares), high4d(squares));
        for (long i = whole; i < size; i++) square_total += (in[i] - mean) * (in[i] - mean);
        double inverse = 1.0 / sqrt(square_total / (double)size + epsilon);
        means[r] = (float)mean;
        inverses[r] = (float)inverse;
        __m512d scale = _mm512_set1_pd(inverse);
        for (long i = 0; i < whole; i += 8) {
            __m256 normalized =
                _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(in + i)), center), scale));
            __m256 scaled = _mm256_mul_ps(normalized, _mm256_loadu_ps(gamma + i));
            _mm256_storeu_ps(out + i, _mm256_add_ps(scaled, _mm256_loadu_ps(beta + i)));
        }
        for (long i = whole; i < size; i++) out[i] = (float)((in[i] - mean) * inverse) * gamma[i] + beta[i];
    }
}

#endif

// Winograd F(2x2, 3x3) input and output transforms with AVX2: eight neighbouring tiles per
// vector, the stride-2 tile taps split out of two contiguous loads by shuffles, masked loads and
// stores at the image edges; the AVX-512 transforms' arithmetic (winograd_avx512.c) in the same
// order, so the same bits.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"

AVX2 void sd_winograd_input_avx2(const float *image, int height, int width, int pad_top, int pad_left, int ty, int tx,
                                 int count, float *v, long plane) {
    int top = 2 * ty - pad_top;
    for (int done = 0; done < count; done += 8) {
        int n = count - done < 8 ? count - done : 8;
        int left = 2 * (tx + done) - pad_left;
        // d[i][j]: tap (i, j) of the 8 tiles, tile k reading column left + 2k + j.
        __m256 d[4][4];
        for (int i = 0; i < 4; i++) {
            int h = top + i;
            if (h < 0 || h >= height) {
                for (int j = 0; j < 4; j++) d[i][j] = _mm256_setzero_ps();
                continue;
            }
            const float *row = image + (long)h * width;
            __m256 a0 = load8(row, left, width), a1 = load8(row, left + 8, width);
            __m256 b0 = load8(row, left + 2, width), b1 = load8(row, left + 10, width);
            d[i][0] = deinterleave(a0, a1, 0);
            d[i][1] = deinterleave(a0, a1, 1);
            d[i][2] = deinterleave(b0, b1, 0);
            d[i][3] = deinterleave(b0, b1, 1);
        }
        float *out = v + done;
        for (int j = 0; j < 4; j++) {  // t = B^T d, column j
            __m256 t0 = _mm256_sub_ps(d[0][j], d[2][j]), t1 = _mm256_add_ps(d[1][j], d[2][j]);
            __m256 t2 = _mm256_sub_ps(d[2][j], d[1][j]), t3 = _mm256_sub_ps(d[1][j], d[3][j]);
            d[0][j] = t0; d[1][j] = t1; d[2][j] = t2; d[3][j] = t3;
        }
        for (int r = 0; r < 4; r++) {  // (t B) row r
            __m256 x0 = d[r][0], x1 = d[r][1], x2 = d[r][2], x3 = d[r][3];
            store8(out + (4 * r + 0) * plane, _mm256_sub_ps(x0, x2), n);
            store8(out + (4 * r + 1) * plane, _mm256_add_ps(x1, x2), n);
            store8(out + (4 * r + 2) * plane, _mm256_sub_ps(x2, x1), n);
            store8(out + (4 * r + 3) * plane, _mm256_sub_ps(x1, x3), n);
        }
    }
}

AVX2 void sd_winograd_output_avx2(const float *m, long plane, int count, float *map, int height, int width, int ty, int tx,
                                  float bias, const float *residual, int relu) {
    const __m256 zero = _mm256_setzero_ps(), offset = _mm256_set1_ps(bias);
    for (int done = 0; done < count; done += 8) {
        int n = count - done < 8 ? count - done : 8;
        __m256i mask = lanes_below8(n);
        const float *in = m + done;
        __m256 p[16];
        for (int point = 0; point < 16; point++)
            p[point] = n == 8 ? _mm256_loadu_ps(in + point * plane) : _mm256_maskload_ps(in + point * plane, mask);
        // A^T M: two rows of four, then times A.
        __m256 top[4], bottom[4];
        for (int j = 0; j < 4; j++) {
            top[j] = _mm256_add_ps(_mm256_add_ps(p[j], p[4 + j]), p[8 + j]);
            bottom[j] = _mm256_sub_ps(_mm256_sub_ps(p[4 + j], p[8 + j]), p[12 + j]);
        }
        __m256 y[2][2] = {
            {_mm256_add_ps(_mm256_add_ps(top[0], top[1]), top[2]), _mm256_sub_ps(_mm256_sub_ps(top[1], top[2]), top[3])},
            {_mm256_add_ps(_mm256_add_ps(bottom[0], bottom[1]), bottom[2]),
             _mm256_sub_ps(_mm256_sub_ps(bottom[1], bottom[2]), bottom[3])},
        };
        int column = 2 * (tx + done);
        int valid = width - column < 2 * n ? width - column : 2 * n;  // output columns this chunk covers
        for (int i = 0; i < 2; i++) {
            int h = 2 * ty + i;
            if (h >= height) break;
            __m256 e = _mm256_add_ps(y[i][0], offset), o = _mm256_add_ps(y[i][1], offset);
            // e0 o0 e1 o1 | e4 o4 e5 o5 and e2 o2 e3 o3 | e6 o6 e7 o7, then the 128-bit halves in order.
            __m256 low = _mm256_unpacklo_ps(e, o), high = _mm256_unpackhi_ps(e, o);
            __m256 first = _mm256_permute2f128_ps(low, high, 0x20), second = _mm256_permute2f128_ps(low, high, 0x31);
            long at = (long)h * width + column;
            if (residual) {
                first = _mm256_add_ps(first, load8(residual + at, 0, valid));
                second = _mm256_add_ps(second, load8(residual + at, 8, valid));
            }
            if (relu) {  // max(0, x): the second operand wins on NaN, as Swift's max(x, 0)
                first = _mm256_max_ps(zero, first);
                second = _mm256_max_ps(zero, second);
            }
            store8(map + at, first, valid);
            if (valid > 8) store8(map + at + 8, second, valid - 8);
        }
    }
}

#endif

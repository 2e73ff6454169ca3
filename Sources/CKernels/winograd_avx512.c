// Winograd F(2x2, 3x3) input and output transforms with AVX-512: sixteen neighbouring tiles per
// vector lane set, the stride-2 tile taps split out of two contiguous loads by permutes, masked
// loads and stores at the image edges.
#include "levels.h"

#if defined(__x86_64__)
#include "vector_math.h"

AVX512 void sd_winograd_input_avx512(const float *image, int height, int width, int pad_top, int pad_left, int ty, int tx,
                              int count, float *v, long plane) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    int top = 2 * ty - pad_top;
    for (int done = 0; done < count; done += 16) {
        int n = count - done < 16 ? count - done : 16;
        int left = 2 * (tx + done) - pad_left;
        // d[i][j]: tap (i, j) of the 16 tiles, tile k reading column left + 2k + j.
        __m512 d[4][4];
        for (int i = 0; i < 4; i++) {
            int h = top + i;
            if (h < 0 || h >= height) {
                for (int j = 0; j < 4; j++) d[i][j] = _mm512_setzero_ps();
                continue;
            }
            const float *row = image + (long)h * width;
            __m512 a0 = load16(row, left, width), a1 = load16(row, left + 16, width);
            __m512 b0 = load16(row, left + 2, width), b1 = load16(row, left + 18, width);
            d[i][0] = _mm512_permutex2var_ps(a0, even, a1);
            d[i][1] = _mm512_permutex2var_ps(a0, odd, a1);
            d[i][2] = _mm512_permutex2var_ps(b0, even, b1);
            d[i][3] = _mm512_permutex2var_ps(b0, odd, b1);
        }
        __mmask16 mask = lanes_below16(n);
        float *out = v + done;
        for (int j = 0; j < 4; j++) {  // t = B^T d, column j
            __m512 t0 = _mm512_sub_ps(d[0][j], d[2][j]), t1 = _mm512_add_ps(d[1][j], d[2][j]);
            __m512 t2 = _mm512_sub_ps(d[2][j], d[1][j]), t3 = _mm512_sub_ps(d[1][j], d[3][j]);
            d[0][j] = t0; d[1][j] = t1; d[2][j] = t2; d[3][j] = t3;
        }
        for (int r = 0; r < 4; r++) {  // (t B) row r
            __m512 x0 = d[r][0], x1 = d[r][1], x2 = d[r][2], x3 = d[r][3];
            _mm512_mask_storeu_ps(out + (4 * r + 0) * plane, mask, _mm512_sub_ps(x0, x2));
            _mm512_mask_storeu_ps(out + (4 * r + 1) * plane, mask, _mm512_add_ps(x1, x2));
            _mm512_mask_storeu_ps(out + (4 * r + 2) * plane, mask, _mm512_sub_ps(x2, x1));
            _mm512_mask_storeu_ps(out + (4 * r + 3) * plane, mask, _mm512_sub_ps(x1, x3));
        }
    }
}

AVX512 void sd_winograd_output_avx512(const float *m, long plane, int count, float *map, int height, int width, int ty, int tx,
                               float bias, const float *residual, int relu) {
    const __m512i low = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i high = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const __m512 zero = _mm512_setzero_ps(), offset = _mm512_set1_ps(bias);
    for (int done = 0; done < count; done += 16) {
        int n = count - done < 16 ? count - done : 16;
        __mmask16 mask = lanes_below16(n);
        const float *in = m + done;
        __m512 p[16];
        for (int point = 0; point < 16; point++) p[point] = _mm512_maskz_loadu_ps(mask, in + point * plane);
        // A^T M: two rows of four, then times A.
        __m512 top[4], bottom[4];
        for (int j = 0; j < 4; j++) {
            top[j] = _mm512_add_ps(_mm512_add_ps(p[j], p[4 + j]), p[8 + j]);
            bottom[j] = _mm512_sub_ps(_mm512_sub_ps(p[4 + j], p[8 + j]), p[12 + j]);
        }
        __m512 y[2][2] = {
            {_mm512_add_ps(_mm512_add_ps(top[0], top[1]), top[2]), _mm512_sub_ps(_mm512_sub_ps(top[1], top[2]), top[3])},
            {_mm512_add_ps(_mm512_add_ps(bottom[0], bottom[1]), bottom[2]),
             _mm512_sub_ps(_mm512_sub_ps(bottom[1], bottom[2]), bottom[3])},
        };
        int column = 2 * (tx + done);
        int valid = width - column < 2 * n ? width - column : 2 * n;  // output columns this chunk covers
        for (int i = 0; i < 2; i++) {
            int h = 2 * ty + i;
            if (h >= height) break;
            __m512 e = _mm512_add_ps(y[i][0], offset), o = _mm512_add_ps(y[i][1], offset);
            // The row's outputs in order: the first sixteen, then the rest.
            __m512 first = _mm512_permutex2var_ps(e, low, o), second = _mm512_permutex2var_ps(e, high, o);
            __mmask16 first_mask = lanes_below16(valid), second_mask = lanes_below16(valid > 16 ? valid - 16 : 0);
            long at = (long)h * width + column;
            if (residual) {
                first = _mm512_add_ps(first, _mm512_maskz_loadu_ps(first_mask, residual + at));
                second = _mm512_add_ps(second, _mm512_maskz_loadu_ps(second_mask, residual + at + 16));
            }
            if (relu) {  // max(0, x): the second operand wins on NaN, as Swift's max(x, 0)
                first = _mm512_max_ps(zero, first);
                second = _mm512_max_ps(zero, second);
            }
            _mm512_mask_storeu_ps(map + at, first_mask, first);
            if (valid > 16) _mm512_mask_storeu_ps(map + at + 16, second_mask, second);
        }
    }
}

#endif

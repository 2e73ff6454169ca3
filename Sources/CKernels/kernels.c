// The kernel tables, the CPU checks that pick them, the blocking read from the cache sizes, and
// the packing of operands into micro-panels (plain C: weights are packed once, a transposed
// operand once per product).
#include "levels.h"

#include <string.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

#if defined(__x86_64__)
static const sd_kernels avx512 = {
    SD_LEVEL_AVX512, SD_AVX512_MR, SD_AVX512_NR, 16, sd_gemm_avx512, sd_erf_avx512, sd_gelu_avx512,
    sd_gelu_chain_avx512, sd_erf_backward_avx512, sd_gelu_backward_avx512, sd_softmax_rows_avx512, sd_layer_norm_rows_avx512,
    sd_winograd_input_avx512, sd_winograd_output_avx512, sd_max_pool_row_avx512,
};
static const sd_kernels avx2 = {
    SD_LEVEL_AVX2, SD_AVX2_MR, SD_AVX2_NR, 8, sd_gemm_avx2, sd_erf_avx2, sd_gelu_avx2,
    sd_gelu_chain_avx2, sd_erf_backward_avx2, sd_gelu_backward_avx2, sd_softmax_rows_avx2, sd_layer_norm_rows_avx2,
    sd_winograd_input_avx2, sd_winograd_output_avx2, sd_max_pool_row_avx2,
};
#endif

const sd_kernels *sd_kernels_for(sd_level level) {
#if defined(__x86_64__)
    // The compiler's CPU model checks the operating system's register saving (XCR0) too.
    __builtin_cpu_init();
    switch (level) {
    case SD_LEVEL_AVX512: return __builtin_cpu_supports("avx512f") ? &avx512 : 0;
    case SD_LEVEL_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &avx2 : 0;
    default: return 0;
    }
#else
    (void)level;
    return 0;
#endif
}

long sd_l2_cache_size(void) {
    long size = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    size = sysconf(_SC_LEVEL2_CACHE_SIZE);
#elif defined(__APPLE__)
    long long value = 0;
    size_t length = sizeof value;
    if (sysctlbyname("hw.l2cachesize", &value, &length, 0, 0) == 0) size = (long)value;
#endif
    return size > 0 ? size : 0;
}

static int clamp(long value, int low, int high) { return value < low ? low : value > high ? high : (int)value; }

void sd_gemm_blocking(const sd_kernels *kernels, int *kc, int *mc) {
    long l2 = sd_l2_cache_size();
    // Where the system does not say: the smallest level-2 cache of the x86 cores with AVX2.
    if (l2 < 65536) l2 = 256 << 10;
    // The B micro-panel (kc x nr) is read once per row tile of a row block: an eighth of L2, read
    // from there at a few bytes per cycle (less than L2 delivers); deep blocks keep the C tile in
    // registers longest. The A block (mc x kc), read once per column panel, takes half of L2.
    *kc = clamp(l2 / 8 / (4L * kernels->nr) / 8 * 8, 64, 1024);
    *mc = clamp(l2 / 2 / (4L * *kc) / kernels->mr * kernels->mr, kernels->mr, 4096);
}

size_t sd_gemm_packed_a_count(const sd_kernels *kernels, int m, int k) {
    int mr = kernels->mr;
    return (size_t)((m + mr - 1) / mr) * mr * (size_t)k;
}

size_t sd_gemm_packed_b_count(const sd_kernels *kernels, int k, int n) {
    int nr = kernels->nr, full = n / nr * nr;
    return (size_t)k * (size_t)(full + (n > full ? sd_panel_width(n - full, nr, kernels->lanes) : 0));
}

void sd_gemm_pack_a(const sd_kernels *kernels, int m, int k, const float *a, long row_stride, long depth_stride,
                    float *out) {
    int mr = kernels->mr;
    for (int i0 = 0; i0 < m; i0 += mr) {
        int rows = sd_imin(mr, m - i0);
        float *panel = out + (size_t)i0 * k;
        for (int p = 0; p < k; p++) {
            int r = 0;
            for (; r < rows; r++) panel[(size_t)p * mr + r] = a[(long)(i0 + r) * row_stride + (long)p * depth_stride];
            for (; r < mr; r++) panel[(size_t)p * mr + r] = 0;
        }
    }
}

void sd_gemm_pack_b(const sd_kernels *kernels, int k, int n, const float *b, long depth_stride, long column_stride,
                    float *out) {
    int nr = kernels->nr;
    for (int j0 = 0; j0 < n; j0 += nr) {
        int columns = sd_imin(nr, n - j0), width = sd_panel_width(columns, nr, kernels->lanes);
        float *panel = out + (size_t)j0 * k;
        for (int p = 0; p < k; p++) {
            const float *from = b + (long)p * depth_stride + (long)j0 * column_stride;
            float *to = panel + (size_t)p * width;
            int j = 0;
            if (column_stride == 1) {
                memcpy(to, from, sizeof(float) * (size_t)columns);
                j = columns;
            }
            for (; j < columns; j++) to[j] = from[(long)j * column_stride];
            for (; j < width; j++) to[j] = 0;
        }
    }
}

void sd_copy_every_second(const float *src, float *dst, long count) {
    long i = 0;
#if defined(__x86_64__)
    // Four outputs from two loads; the second load reads src[2 i + 7], so stop while it is inside.
    for (; i + 5 <= count; i += 4) {
        __m128 a = _mm_loadu_ps(src + 2 * i), b = _mm_loadu_ps(src + 2 * i + 4);
        _mm_storeu_ps(dst + i, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
    }
#endif
    for (; i < count; i++) dst[i] = src[2 * i];
}

void sd_gemm_empty(const sd_gemm_problem *p) {
    for (int i = 0; i < p->m; i++)
        for (int j = 0; j < p->n; j++) {
            float *c = p->c + (long)i * p->ldc + j;
            float x = (p->accumulate ? *c : 0.0f) + (p->row_bias ? p->row_bias[i] : 0.0f);
            x += p->column_bias ? p->column_bias[j] : 0.0f;
            if (p->residual) x += p->residual[(long)i * p->ldr + j];
            *c = p->relu && !(x >= 0.0f) && x == x ? 0.0f : x;
        }
}

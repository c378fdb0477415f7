// Pooling over image planes: 2x2 max (forward and backward) and the global average.
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

/// The larger of a and b, b when equal (Swift's max).
ABN_INLINE float abn_max(float a, float b) { return b >= a ? b : a; }

ABN_INLINE void abn_max_pool_body(float *restrict y, const float *restrict x, ptrdiff_t planes, ptrdiff_t H, ptrdiff_t W) {
    const ptrdiff_t OH = H / 2, OW = W / 2;
    for (ptrdiff_t p = 0; p < planes; p++) {
        const float *src = x + p * H * W;
        float *dst = y + p * OH * OW;
        for (ptrdiff_t oh = 0; oh < OH; oh++) {
            const float *restrict r0 = src + 2 * oh * W, *restrict r1 = r0 + W;
            for (ptrdiff_t ow = 0; ow < OW; ow++) {
                dst[oh * OW + ow] = abn_max(abn_max(r0[2 * ow], r0[2 * ow + 1]), abn_max(r1[2 * ow], r1[2 * ow + 1]));
            }
        }
    }
}

ABN_DISPATCH(abn_max_pool, (float *y, const float *x, ptrdiff_t planes, ptrdiff_t H, ptrdiff_t W), (y, x, planes, H, W))

ABN_INLINE void abn_max_pool_backward_body(float *restrict dx, const float *restrict dy, const float *restrict x, ptrdiff_t planes,
                                           ptrdiff_t H, ptrdiff_t W) {
    const ptrdiff_t OH = H / 2, OW = W / 2;
    memset(dx, 0, sizeof(float) * (size_t)(planes * H * W));
    for (ptrdiff_t p = 0; p < planes; p++) {
        const float *src = x + p * H * W, *d = dy + p * OH * OW;
        float *g = dx + p * H * W;
        for (ptrdiff_t oh = 0; oh < OH; oh++) {
            for (ptrdiff_t ow = 0; ow < OW; ow++) {
                const ptrdiff_t base = 2 * oh * W + 2 * ow, others[3] = {base + 1, base + W, base + W + 1};
                ptrdiff_t best = base;
                for (int k = 0; k < 3; k++) best = src[others[k]] > src[best] ? others[k] : best;
                g[best] = d[oh * OW + ow];
            }
        }
    }
}

ABN_DISPATCH(abn_max_pool_backward, (float *dx, const float *dy, const float *x, ptrdiff_t planes, ptrdiff_t H, ptrdiff_t W),
             (dx, dy, x, planes, H, W))

ABN_INLINE void abn_average_planes_body(float *restrict y, const float *restrict x, ptrdiff_t planes, ptrdiff_t pixels) {
    for (ptrdiff_t p = 0; p < planes; p++) {
        const float *src = x + p * pixels;
        abn_f16 lanes = {0};
        ptrdiff_t i = 0;
        for (; i + 16 <= pixels; i += 16) {
            abn_f16 v;
            memcpy(&v, src + i, sizeof v);
            lanes += v;
        }
        float sum = abn_f16_total(&lanes);
        for (; i < pixels; i++) sum += src[i];
        y[p] = sum * (1.0f / (float)pixels);
    }
}

ABN_DISPATCH(abn_average_planes, (float *y, const float *x, ptrdiff_t planes, ptrdiff_t pixels), (y, x, planes, pixels))

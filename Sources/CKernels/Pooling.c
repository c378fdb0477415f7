// Pooling over image planes: the global average.
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

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

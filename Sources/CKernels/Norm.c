// Norm-layer passes over one image plane of a channel.
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

#pragma clang fp contract(off)  // the same roundings at every level: no fused multiply-adds

typedef float abn_f16 __attribute__((vector_size(64)));
typedef int abn_i16 __attribute__((vector_size(64)));

/// Explicit vectors of 16 (one AVX-512 register, two AVX2 ones, four SSE ones) with loads and
/// stores through memcpy: z may be x (the layer works in place).
ABN_INLINE void abn_norm_leaky_plane_body(float *z, const float *x, ptrdiff_t pixels, float a, float m, float b, float slope) {
    const abn_f16 va = {a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a} , vm = va * 0 + m, vb = va * 0 + b;
    const abn_f16 vslope = va * 0 + slope, one = va * 0 + 1.0f;
    ptrdiff_t j = 0;
    for (; j + 16 <= pixels; j += 16) {
        abn_f16 v;
        memcpy(&v, x + j, sizeof v);
        const abn_f16 y = (v - vm) * va + vb;
        const abn_i16 negative = y < 0;  // all ones where y < 0
        const abn_f16 factor = (abn_f16)(((abn_i16)vslope & negative) | ((abn_i16)one & ~negative));
        const abn_f16 out = y * factor;
        memcpy(z + j, &out, sizeof out);
    }
    for (; j < pixels; j++) {
        const float y = (x[j] - m) * a + b;
        z[j] = y * (y < 0 ? slope : 1.0f);
    }
}

ABN_DISPATCH(abn_norm_leaky_plane,
             (float *z, const float *x, ptrdiff_t pixels, float scale, float center, float beta, float slope),
             (z, x, pixels, scale, center, beta, slope))

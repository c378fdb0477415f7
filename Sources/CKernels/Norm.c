// Norm-layer passes over one image plane of a channel.
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

#pragma clang fp contract(off)  // the same roundings at every level: no fused multiply-adds

/// Per lane: A where MASK is set (all ones), else B. (A macro: vector arguments to functions
/// would change the calling convention between levels.)
#define ABN_SELECT(MASK, A, B) ((abn_f16)(((abn_i16)(A) & (MASK)) | ((abn_i16)(B) & ~(MASK))))

/// Explicit vectors of 16 (one AVX-512 register, two AVX2 ones, four SSE ones) with loads and
/// stores through memcpy: z may be x (the layer works in place).
ABN_INLINE void abn_norm_leaky_plane_body(float *z, const float *x, ptrdiff_t pixels, float a, float m, float b, float slope) {
    const abn_f16 zero = {0}, va = zero + a, vm = zero + m, vb = zero + b, vslope = zero + slope, one = zero + 1.0f;
    ptrdiff_t j = 0;
    for (; j + 16 <= pixels; j += 16) {
        abn_f16 v;
        memcpy(&v, x + j, sizeof v);
        const abn_f16 y = (v - vm) * va + vb;
        const abn_f16 out = y * ABN_SELECT(y < 0, vslope, one);
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

/// dy = g * (z < 0 ? slope : 1) and xhat = (u - center) * factor for 16 values at j, u = x when
/// given, else z * (z < 0 ? 1 / slope : 1) (z inverted through the activation).
ABN_INLINE void abn_leaky_recover16(abn_f16 *dy, abn_f16 *xhat, const float *g, const float *z, const float *x, ptrdiff_t j,
                                    float slope, float inverse, float center, float factor) {
    const abn_f16 zero = {0}, one = zero + 1.0f;
    abn_f16 vg, vz, u;
    memcpy(&vg, g + j, sizeof vg);
    memcpy(&vz, z + j, sizeof vz);
    const abn_i16 negative = vz < 0;
    *dy = vg * ABN_SELECT(negative, zero + slope, one);
    if (x != NULL) {
        memcpy(&u, x + j, sizeof u);
    } else {
        u = vz * ABN_SELECT(negative, zero + inverse, one);
    }
    *xhat = (u - center) * factor;
}

/// The same for the value at j.
ABN_INLINE void abn_leaky_recover1(float *dy, float *xhat, const float *g, const float *z, const float *x, ptrdiff_t j,
                                   float slope, float inverse, float center, float factor) {
    *dy = g[j] * (z[j] < 0 ? slope : 1.0f);
    const float u = x != NULL ? x[j] : z[j] * (z[j] < 0 ? inverse : 1.0f);
    *xhat = (u - center) * factor;
}

ABN_INLINE void abn_leaky_backward_sums_body(const float *g, const float *z, const float *x, ptrdiff_t count, float slope,
                                             float center, float factor, double *sums) {
    const float inverse = 1.0f / slope;
    const abn_d16 zero = {0};
    abn_d16 s1 = zero, s2 = zero;  // Double lanes: the sums cancel, and a plane may be large
    abn_f16 dy, xhat;
    ptrdiff_t j = 0;
    for (; j + 16 <= count; j += 16) {
        abn_leaky_recover16(&dy, &xhat, g, z, x, j, slope, inverse, center, factor);
        const abn_f16 product = dy * xhat;
        s1 += __builtin_convertvector(dy, abn_d16);
        s2 += __builtin_convertvector(product, abn_d16);
    }
    double t1 = 0, t2 = 0;
    for (float d, h; j < count; j++) {
        abn_leaky_recover1(&d, &h, g, z, x, j, slope, inverse, center, factor);
        t1 += (double)d;
        t2 += (double)(d * h);
    }
    sums[0] = abn_d16_total(&s1) + t1;
    sums[1] = abn_d16_total(&s2) + t2;
}

ABN_DISPATCH(abn_leaky_backward_sums,
             (const float *g, const float *z, const float *x, ptrdiff_t count, float slope, float center, float factor, double *sums),
             (g, z, x, count, slope, center, factor, sums))

ABN_INLINE void abn_leaky_backward_write_body(float *q, const float *z, const float *x, ptrdiff_t count, float slope, float center,
                                              float factor, float a, float m1, float m2) {
    const float inverse = 1.0f / slope;
    abn_f16 dy, xhat;
    ptrdiff_t j = 0;
    for (; j + 16 <= count; j += 16) {
        abn_leaky_recover16(&dy, &xhat, q, z, x, j, slope, inverse, center, factor);
        const abn_f16 out = a * (dy - m1 - xhat * m2);
        memcpy(q + j, &out, sizeof out);
    }
    for (float d, h; j < count; j++) {
        abn_leaky_recover1(&d, &h, q, z, x, j, slope, inverse, center, factor);
        q[j] = a * (d - m1 - h * m2);
    }
}

ABN_DISPATCH(abn_leaky_backward_write,
             (float *q, const float *z, const float *x, ptrdiff_t count, float slope, float center, float factor, float a, float m1, float m2),
             (q, z, x, count, slope, center, factor, a, m1, m2))

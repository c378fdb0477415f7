// Direct convolution for inputs of few channels (the stem): stride 1, dilation 1. Lowered to a
// GEMM, such a convolution is 9 to 36 deep and bound by copies and GEMM overhead; here each
// output row is computed in vectors of 16 pixels from a zero-padded copy of the input planes.
// Multiply-adds may fuse (FMA) at the AVX2 and AVX-512 levels, so those levels round slightly
// differently from the baseline (within the golden tolerances); each level is deterministic.
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

#pragma clang fp contract(fast)

/// Output channels per pass of the forward kernel and of the weight gradient.
enum { ABN_DIRECT_OUT = 4, ABN_DIRECT_GRAD_OUT = 2 };

ptrdiff_t abn_direct_scratch(ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW) {
    const ptrdiff_t Hp = H + 2 * padH, Wp = W + 2 * padW, OW = Wp - kW + 1;
    return C * Hp * Wp + ABN_DIRECT_OUT * OW + 16;
}

/// The input planes (C, H, W) of one image, zero-padded, at padded (C, Hp, Wp).
ABN_INLINE void abn_pad_planes(float *restrict padded, const float *restrict x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t padH,
                               ptrdiff_t padW) {
    const ptrdiff_t Hp = H + 2 * padH, Wp = W + 2 * padW;
    memset(padded, 0, sizeof(float) * (size_t)(C * Hp * Wp));
    for (ptrdiff_t c = 0; c < C; c++) {
        for (ptrdiff_t h = 0; h < H; h++) memcpy(padded + (c * Hp + h + padH) * Wp + padW, x + (c * H + h) * W, sizeof(float) * (size_t)W);
    }
}

/// The starts of the 16-pixel chunks of a row of OW >= 16 outputs: 0, 16, ..., and OW - 16 for
/// a remainder (overlapping the chunk before it).
ABN_INLINE ptrdiff_t abn_chunk_start(ptrdiff_t chunk, ptrdiff_t OW) {
    const ptrdiff_t s = 16 * chunk;
    return s + 16 <= OW ? s : OW - 16;
}

/// Forward for one image. T = C * kH * kW taps (a constant in the specialized copy).
ABN_INLINE void abn_direct_conv_image(float *restrict y, const float *restrict x, const float *restrict w, const float *bias,
                                      int accumulate, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW,
                                      ptrdiff_t padH, ptrdiff_t padW, float *restrict scratch) {
    const ptrdiff_t Hp = H + 2 * padH, Wp = W + 2 * padW, OH = Hp - kH + 1, OW = Wp - kW + 1, T = C * kH * kW;
    float *restrict padded = scratch, *restrict rows = scratch + C * Hp * Wp;  // rows: ABN_DIRECT_OUT x OW
    abn_pad_planes(padded, x, C, H, W, padH, padW);
    const ptrdiff_t chunks = OW >= 16 ? (OW + 15) / 16 : 0;
    for (ptrdiff_t o0 = 0; o0 < OC; o0 += ABN_DIRECT_OUT) {
        const ptrdiff_t ob = OC - o0 < ABN_DIRECT_OUT ? OC - o0 : ABN_DIRECT_OUT;
        const float *wb = w + o0 * T;
        for (ptrdiff_t oh = 0; oh < OH; oh++) {
            if (ob == ABN_DIRECT_OUT && chunks > 0) {
                for (ptrdiff_t chunk = 0; chunk < chunks; chunk++) {
                    const ptrdiff_t s = abn_chunk_start(chunk, OW);
                    abn_f16 acc[ABN_DIRECT_OUT];
                    for (int q = 0; q < ABN_DIRECT_OUT; q++) acc[q] = (abn_f16){0} + (bias != NULL && !accumulate ? bias[o0 + q] : 0.0f);
                    for (ptrdiff_t c = 0; c < C; c++) {
                        for (ptrdiff_t i = 0; i < kH; i++) {
                            const float *row = padded + (c * Hp + oh + i) * Wp + s;
                            for (ptrdiff_t j = 0; j < kW; j++) {
                                abn_f16 v;
                                memcpy(&v, row + j, sizeof v);
                                const ptrdiff_t t = (c * kH + i) * kW + j;
                                for (int q = 0; q < ABN_DIRECT_OUT; q++) acc[q] += wb[q * T + t] * v;
                            }
                        }
                    }
                    // without accumulation straight to y (an overlapping last chunk rewrites equal values)
                    float *const out = accumulate ? rows + s : y + (o0 * OH + oh) * OW + s;
                    const ptrdiff_t stride = accumulate ? OW : OH * OW;
                    for (int q = 0; q < ABN_DIRECT_OUT; q++) memcpy(out + q * stride, &acc[q], sizeof acc[q]);
                }
                if (!accumulate) continue;
            } else {  // narrow rows or the last output channels: one value at a time
                for (ptrdiff_t q = 0; q < ob; q++) {
                    for (ptrdiff_t ow = 0; ow < OW; ow++) {
                        float sum = 0;
                        for (ptrdiff_t c = 0; c < C; c++) {
                            for (ptrdiff_t i = 0; i < kH; i++) {
                                const float *row = padded + (c * Hp + oh + i) * Wp + ow;
                                for (ptrdiff_t j = 0; j < kW; j++) sum += wb[q * T + (c * kH + i) * kW + j] * row[j];
                            }
                        }
                        rows[q * OW + ow] = sum;
                    }
                }
            }
            for (ptrdiff_t q = 0; q < ob; q++) {
                float *out = y + ((o0 + q) * OH + oh) * OW;
                const float add = bias != NULL ? bias[o0 + q] : 0;
                for (ptrdiff_t ow = 0; ow < OW; ow++) out[ow] = (accumulate ? out[ow] : 0) + rows[q * OW + ow] + add;
            }
        }
    }
}

ABN_INLINE void abn_direct_conv_body(float *y, const float *x, const float *w, const float *bias, int accumulate, ptrdiff_t C,
                                     ptrdiff_t H, ptrdiff_t W, ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW,
                                     float *scratch) {
    if (C == 1 && kH == 3 && kW == 3) {  // the one-channel 3x3 stem, with constant loop bounds
        abn_direct_conv_image(y, x, w, bias, accumulate, 1, H, W, OC, 3, 3, padH, padW, scratch);
    } else {
        abn_direct_conv_image(y, x, w, bias, accumulate, C, H, W, OC, kH, kW, padH, padW, scratch);
    }
}

ABN_DISPATCH(abn_direct_conv,
             (float *y, const float *x, const float *w, const float *bias, int accumulate, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
              ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW, float *scratch),
             (y, x, w, bias, accumulate, C, H, W, OC, kH, kW, padH, padW, scratch))

/// Weight gradient of one image, added to dW. T = C * kH * kW taps; the accumulators of
/// ABN_DIRECT_GRAD_OUT output channels x T taps are 16-lane vectors, summed at the end.
ABN_INLINE void abn_direct_weight_image(float *restrict dW, const float *restrict dy, const float *restrict x, ptrdiff_t C, ptrdiff_t H,
                                        ptrdiff_t W, ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW,
                                        float *restrict scratch, abn_f16 *restrict acc) {
    const ptrdiff_t Hp = H + 2 * padH, Wp = W + 2 * padW, OH = Hp - kH + 1, OW = Wp - kW + 1, T = C * kH * kW;
    float *restrict padded = scratch;
    abn_pad_planes(padded, x, C, H, W, padH, padW);
    const ptrdiff_t chunks = OW >= 16 ? (OW + 15) / 16 : 0;
    const abn_i16 lanes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (ptrdiff_t o0 = 0; o0 < OC; o0 += ABN_DIRECT_GRAD_OUT) {
        const ptrdiff_t ob = OC - o0 < ABN_DIRECT_GRAD_OUT ? OC - o0 : ABN_DIRECT_GRAD_OUT;
        if (ob == ABN_DIRECT_GRAD_OUT && chunks > 0) {
            for (ptrdiff_t t = 0; t < ABN_DIRECT_GRAD_OUT * T; t++) acc[t] = (abn_f16){0};
            for (ptrdiff_t oh = 0; oh < OH; oh++) {
                for (ptrdiff_t chunk = 0; chunk < chunks; chunk++) {
                    const ptrdiff_t s = abn_chunk_start(chunk, OW);
                    // the lanes an overlapping last chunk shares with the chunk before count once
                    const abn_i16 fresh = lanes >= (int)(16 * chunk - s);
                    abn_f16 d[ABN_DIRECT_GRAD_OUT];
                    for (int q = 0; q < ABN_DIRECT_GRAD_OUT; q++) {
                        memcpy(&d[q], dy + ((o0 + q) * OH + oh) * OW + s, sizeof d[q]);
                        d[q] = (abn_f16)((abn_i16)d[q] & fresh);
                    }
                    for (ptrdiff_t c = 0; c < C; c++) {
                        for (ptrdiff_t i = 0; i < kH; i++) {
                            const float *row = padded + (c * Hp + oh + i) * Wp + s;
                            for (ptrdiff_t j = 0; j < kW; j++) {
                                abn_f16 v;
                                memcpy(&v, row + j, sizeof v);
                                const ptrdiff_t t = (c * kH + i) * kW + j;
                                for (int q = 0; q < ABN_DIRECT_GRAD_OUT; q++) acc[q * T + t] += d[q] * v;
                            }
                        }
                    }
                }
            }
            for (ptrdiff_t q = 0; q < ABN_DIRECT_GRAD_OUT; q++) {
                for (ptrdiff_t t = 0; t < T; t++) dW[(o0 + q) * T + t] += abn_f16_total(&acc[q * T + t]);
            }
        } else {  // narrow rows or the last output channel: one value at a time
            for (ptrdiff_t q = 0; q < ob; q++) {
                for (ptrdiff_t t = 0; t < T; t++) {
                    const ptrdiff_t c = t / (kH * kW), i = t / kW % kH, j = t % kW;
                    double sum = 0;  // one long chain: in Double
                    for (ptrdiff_t oh = 0; oh < OH; oh++) {
                        const float *g = dy + ((o0 + q) * OH + oh) * OW, *row = padded + (c * Hp + oh + i) * Wp + j;
                        for (ptrdiff_t ow = 0; ow < OW; ow++) sum += (double)(g[ow] * row[ow]);
                    }
                    dW[(o0 + q) * T + t] += (float)sum;
                }
            }
        }
    }
}

ABN_INLINE void abn_direct_conv_weight_gradient_body(float *dW, const float *dy, const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
                                                     ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW,
                                                     float *scratch) {
    if (C == 1 && kH == 3 && kW == 3) {  // constant taps: the accumulators can live in registers
        abn_f16 acc[ABN_DIRECT_GRAD_OUT * 9];
        abn_direct_weight_image(dW, dy, x, 1, H, W, OC, 3, 3, padH, padW, scratch, acc);
    } else {  // accumulators after the padded planes, 64-byte aligned
        const ptrdiff_t Hp = H + 2 * padH, Wp = W + 2 * padW;
        abn_f16 *acc = (abn_f16 *)(((size_t)(scratch + C * Hp * Wp) + 63) & ~(size_t)63);
        abn_direct_weight_image(dW, dy, x, C, H, W, OC, kH, kW, padH, padW, scratch, acc);
    }
}

ABN_DISPATCH(abn_direct_conv_weight_gradient,
             (float *dW, const float *dy, const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t OC, ptrdiff_t kH,
              ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW, float *scratch),
             (dW, dy, x, C, H, W, OC, kH, kW, padH, padW, scratch))

ptrdiff_t abn_direct_weight_scratch(ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW) {
    return C * (H + 2 * padH) * (W + 2 * padW) + 16 + 16 * ABN_DIRECT_GRAD_OUT * C * kH * kW;
}

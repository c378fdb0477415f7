// Direct convolution for inputs of few channels (the stem): stride 1, dilation 1. Lowered to a
// GEMM, such a convolution is 9 to 36 deep and bound by copies and GEMM overhead; here each
// output plane is computed in vectors of 16 consecutive pixels from column-shifted copies of the
// input planes laid out with the output's row pitch, so that every tap of a vector is one
// contiguous load, whatever rows the vector spans, and no lane is wasted on padding.
// Multiply-adds may fuse (FMA) at the AVX2 and AVX-512 levels, so those levels round slightly
// differently from the baseline (within the golden tolerances); each level is deterministic.
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

#pragma clang fp contract(fast)
// Tap loops ask to be unrolled in full: done where the taps are constants (the stem), left
// rolled (with this warning silenced) where they are not.
#pragma clang diagnostic ignored "-Wpass-failed"

/// Output channels per block: each input vector a block loads feeds all of them. The stem's
/// taps are constants, so at AVX-512 its blocks keep their Q x 9 weights (forward) or tap sums
/// (weight gradient) in the 32 registers; elsewhere, blocks of 4 (forward, weights from memory)
/// and 2 (weight gradient).
enum { ABN_STEM_Q = 3, ABN_STEM_GRAD_Q = 3, ABN_DIRECT_Q = 4, ABN_DIRECT_GRAD_Q = 2, ABN_BLOCK_MAX = 4 };

/// Rows of a shifted copy: the padded input's, OH + kH - 1.
ABN_INLINE ptrdiff_t abn_copy_rows(ptrdiff_t H, ptrdiff_t padH) { return H + 2 * padH; }

/// Floats of one image's shifted copies (C, kW, H + 2 padH, OW).
ABN_INLINE ptrdiff_t abn_copies_count(ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW) {
    return C * kW * abn_copy_rows(H, padH) * (W + 2 * padW - kW + 1);
}

ptrdiff_t abn_direct_scratch(ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW) {
    return abn_copies_count(C, H, W, kW, padH, padW);
}

ptrdiff_t abn_direct_weight_scratch(ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW) {
    return abn_copies_count(C, H, W, kW, padH, padW) + 16 + 16 * ABN_DIRECT_GRAD_Q * C * kH * kW;
}

/// The shifted copies of one image's input planes x (C, H, W): copy (c, j) holds at row r,
/// column ow the pixel x[c][r - padH][ow + j - padW] (zero outside the image), with OW columns
/// per row. Tap (i, j) of output pixel p = oh * OW + ow is then copy (c, j) at flat index
/// p + i * OW.
ABN_INLINE void abn_shifted_copies(float *restrict copies, const float *restrict x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kW,
                                   ptrdiff_t padH, ptrdiff_t padW) {
    const ptrdiff_t rows = abn_copy_rows(H, padH), OW = W + 2 * padW - kW + 1;
    for (ptrdiff_t c = 0; c < C; c++) {
        for (ptrdiff_t j = 0; j < kW; j++) {
            // output column ow reads input column ow + shift: columns first ..< last are inside
            const ptrdiff_t shift = j - padW;
            const ptrdiff_t first = shift < 0 ? (-shift < OW ? -shift : OW) : 0;
            const ptrdiff_t last = W - shift < OW ? (W - shift > first ? W - shift : first) : OW;
            float *copy = copies + (c * kW + j) * rows * OW;
            for (ptrdiff_t r = 0; r < rows; r++) {
                float *out = copy + r * OW;
                const ptrdiff_t h = r - padH;
                if (h < 0 || h >= H) {
                    memset(out, 0, sizeof(float) * (size_t)OW);
                    continue;
                }
                memset(out, 0, sizeof(float) * (size_t)first);
                memcpy(out + first, x + (c * H + h) * W + first + shift, sizeof(float) * (size_t)(last - first));
                memset(out + last, 0, sizeof(float) * (size_t)(OW - last));
            }
        }
    }
}

/// Where tap (i, j) of channel c reads output pixel p's input: copy (c, j) at p + i * OW.
ABN_INLINE const float *abn_tap(const float *copies, ptrdiff_t c, ptrdiff_t i, ptrdiff_t j, ptrdiff_t p, ptrdiff_t kW, ptrdiff_t rows,
                                ptrdiff_t OW) {
    return copies + (c * kW + j) * rows * OW + p + i * OW;
}

/// The start of vector k of a plane of P >= 16 pixels: 16 k, or P - 16 for a remainder
/// (overlapping the vector before it).
ABN_INLINE ptrdiff_t abn_vector_start(ptrdiff_t k, ptrdiff_t P) { return 16 * k + 16 <= P ? 16 * k : P - 16; }

/// Outputs (o0 ..< o0 + Q, pixels p ..< p + 16) of one image from its shifted copies; wb points
/// at channel o0's weights, b at its bias (or NULL). For every output the taps add in (c, i, j)
/// order, from the bias (or zero). With accumulate, the lanes below firstFresh (those an
/// overlapping last vector shares with the vector before) keep y's value.
ABN_INLINE void abn_direct_block(float *restrict y, const float *restrict copies, const float *restrict wb, const float *b,
                                 int accumulate, int firstFresh, ptrdiff_t p, ptrdiff_t C, ptrdiff_t rows, ptrdiff_t OH, ptrdiff_t OW,
                                 ptrdiff_t kH, ptrdiff_t kW, const int Q) {
    const ptrdiff_t T = C * kH * kW;
    abn_f16 acc[ABN_BLOCK_MAX];
    for (int q = 0; q < Q; q++) acc[q] = (abn_f16){0} + (b != NULL && !accumulate ? b[q] : 0.0f);
    for (ptrdiff_t c = 0; c < C; c++) {
#pragma clang loop unroll(full)
        for (ptrdiff_t i = 0; i < kH; i++) {
#pragma clang loop unroll(full)
            for (ptrdiff_t j = 0; j < kW; j++) {
                abn_f16 v;
                memcpy(&v, abn_tap(copies, c, i, j, p, kW, rows, OW), sizeof v);
                for (int q = 0; q < Q; q++) acc[q] += wb[q * T + (c * kH + i) * kW + j] * v;
            }
        }
    }
    const abn_i16 fresh = abn_lanes16 >= firstFresh;
    for (int q = 0; q < Q; q++) {
        float *out = y + q * OH * OW + p;
        if (accumulate) {
            abn_f16 old;
            memcpy(&old, out, sizeof old);
            const abn_f16 sum = old + acc[q] + (b != NULL ? b[q] : 0.0f);
            acc[q] = (abn_f16)(((abn_i16)sum & fresh) | ((abn_i16)old & ~fresh));
        }
        memcpy(out, &acc[q], sizeof acc[q]);
    }
}

/// Output channels o0 ..< o0 + Q of one image, vector by vector.
ABN_INLINE void abn_direct_channels(float *restrict y, const float *restrict copies, const float *restrict w, const float *bias,
                                    int accumulate, ptrdiff_t o0, ptrdiff_t C, ptrdiff_t rows, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t kH,
                                    ptrdiff_t kW, const int Q) {
    const ptrdiff_t T = C * kH * kW, P = OH * OW, vectors = (P + 15) / 16;
    const float *b = bias != NULL ? bias + o0 : NULL;
    // the lines of the next Q planes (the next block's, or the next image's) are fetched for
    // writing meanwhile, Q per vector (as in abn_direct_weight_channels)
    const float *next = y + (o0 + Q) * P;
    for (ptrdiff_t k = 0; k < vectors; k++) {
        const ptrdiff_t p = abn_vector_start(k, P);
        for (int q = 0; q < Q; q++) __builtin_prefetch(next + (k * Q + q) * 16, 1);
        abn_direct_block(y + o0 * P, copies, w + o0 * T, b, accumulate, (int)(16 * k - p), p, C, rows, OH, OW, kH, kW, Q);
    }
}

/// Forward for one image: blocks of Q output channels (the last channels one by one) over the
/// plane's vectors, or for planes of fewer than 16 pixels one value at a time.
ABN_INLINE void abn_direct_conv_image(float *restrict y, const float *restrict x, const float *restrict w, const float *bias,
                                      int accumulate, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW,
                                      ptrdiff_t padH, ptrdiff_t padW, float *restrict copies, const int Q) {
    const ptrdiff_t rows = abn_copy_rows(H, padH), OH = rows - kH + 1, OW = W + 2 * padW - kW + 1, P = OH * OW, T = C * kH * kW;
    abn_shifted_copies(copies, x, C, H, W, kW, padH, padW);
    if (P >= 16) {
        ptrdiff_t o0 = 0;
        for (; o0 + Q <= OC; o0 += Q) abn_direct_channels(y, copies, w, bias, accumulate, o0, C, rows, OH, OW, kH, kW, Q);
        for (; o0 < OC; o0++) abn_direct_channels(y, copies, w, bias, accumulate, o0, C, rows, OH, OW, kH, kW, 1);
        return;
    }
    for (ptrdiff_t o = 0; o < OC; o++) {
        for (ptrdiff_t p = 0; p < P; p++) {
            float sum = 0;
            for (ptrdiff_t t = 0; t < T; t++) {
                const ptrdiff_t c = t / (kH * kW), i = t / kW % kH, j = t % kW;
                sum += w[o * T + t] * *abn_tap(copies, c, i, j, p, kW, rows, OW);
            }
            y[o * P + p] = (accumulate ? y[o * P + p] : 0) + sum + (bias != NULL ? bias[o] : 0);
        }
    }
}

ABN_INLINE void abn_direct_conv_body(int level, float *y, const float *x, const float *w, const float *bias, int accumulate,
                                     ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH,
                                     ptrdiff_t padW, float *scratch) {
    if (C == 1 && kH == 3 && kW == 3) {  // the one-channel 3x3 stem, with constant loop bounds
        if (level == ABN_AVX512) {
            abn_direct_conv_image(y, x, w, bias, accumulate, 1, H, W, OC, 3, 3, padH, padW, scratch, ABN_STEM_Q);
        } else {
            abn_direct_conv_image(y, x, w, bias, accumulate, 1, H, W, OC, 3, 3, padH, padW, scratch, ABN_DIRECT_Q);
        }
    } else {
        abn_direct_conv_image(y, x, w, bias, accumulate, C, H, W, OC, kH, kW, padH, padW, scratch, ABN_DIRECT_Q);
    }
}

ABN_DISPATCH_LEVEL(abn_direct_conv,
                   (float *y, const float *x, const float *w, const float *bias, int accumulate, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
                    ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW, float *scratch),
                   (y, x, w, bias, accumulate, C, H, W, OC, kH, kW, padH, padW, scratch))

/// Adds to the tap sums acc (Q, T) of 16-lane vectors the output gradient of Q channels (dyq at
/// the first one's plane) at pixels p ..< p + 16, with the lanes below firstFresh (counted by
/// the vector before) zeroed, times the shifted copies' vectors of each tap.
ABN_INLINE void abn_direct_weight_block(abn_f16 *restrict acc, const float *restrict dyq, const float *restrict copies, int firstFresh,
                                        ptrdiff_t p, ptrdiff_t C, ptrdiff_t rows, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t kH, ptrdiff_t kW,
                                        const int Q) {
    const ptrdiff_t T = C * kH * kW;
    const abn_i16 fresh = abn_lanes16 >= firstFresh;
    abn_f16 d[ABN_BLOCK_MAX];
    for (int q = 0; q < Q; q++) {
        memcpy(&d[q], dyq + q * OH * OW + p, sizeof d[q]);
        d[q] = (abn_f16)((abn_i16)d[q] & fresh);
    }
    for (ptrdiff_t c = 0; c < C; c++) {
#pragma clang loop unroll(full)
        for (ptrdiff_t i = 0; i < kH; i++) {
#pragma clang loop unroll(full)
            for (ptrdiff_t j = 0; j < kW; j++) {
                abn_f16 v;
                memcpy(&v, abn_tap(copies, c, i, j, p, kW, rows, OW), sizeof v);
                for (int q = 0; q < Q; q++) acc[q * T + (c * kH + i) * kW + j] += d[q] * v;
            }
        }
    }
}

/// Adds to dW the weight gradient of output channels o0 ..< o0 + Q of one image: their Q x T tap
/// sums in acc over the plane's vectors, then each sum's lanes. (With constant taps, acc is a
/// local array the compiler keeps in registers.)
ABN_INLINE void abn_direct_weight_channels(float *restrict dW, const float *restrict dy, const float *restrict copies,
                                           abn_f16 *restrict acc, ptrdiff_t o0, ptrdiff_t C, ptrdiff_t rows, ptrdiff_t OH, ptrdiff_t OW,
                                           ptrdiff_t kH, ptrdiff_t kW, const int Q) {
    const ptrdiff_t T = C * kH * kW, P = OH * OW, vectors = (P + 15) / 16;
#pragma clang loop unroll(full)
    for (ptrdiff_t t = 0; t < Q * T; t++) acc[t] = (abn_f16){0};
    // the next Q planes (contiguous after these: the next block's, or the next image's) are
    // fetched meanwhile, Q lines per vector: these short streams would stall on every miss
    const float *next = dy + (o0 + Q) * P;
    for (ptrdiff_t k = 0; k < vectors; k++) {
        const ptrdiff_t p = abn_vector_start(k, P);
        for (int q = 0; q < Q; q++) __builtin_prefetch(next + (k * Q + q) * 16);
        abn_direct_weight_block(acc, dy + o0 * P, copies, (int)(16 * k - p), p, C, rows, OH, OW, kH, kW, Q);
    }
#pragma clang loop unroll(full)
    for (ptrdiff_t t = 0; t < Q * T; t++) dW[o0 * T + t] += abn_f16_total(&acc[t]);
}

/// Weight gradient of one image, added to dW: blocks of Q output channels (the last channels
/// one by one), or for planes of fewer than 16 pixels one long Double sum per weight.
ABN_INLINE void abn_direct_weight_image(float *restrict dW, const float *restrict dy, const float *restrict x, ptrdiff_t C, ptrdiff_t H,
                                        ptrdiff_t W, ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW,
                                        float *restrict copies, abn_f16 *restrict acc, const int Q) {
    const ptrdiff_t rows = abn_copy_rows(H, padH), OH = rows - kH + 1, OW = W + 2 * padW - kW + 1, P = OH * OW, T = C * kH * kW;
    abn_shifted_copies(copies, x, C, H, W, kW, padH, padW);
    if (P >= 16) {
        ptrdiff_t o0 = 0;
        for (; o0 + Q <= OC; o0 += Q) abn_direct_weight_channels(dW, dy, copies, acc, o0, C, rows, OH, OW, kH, kW, Q);
        for (; o0 < OC; o0++) abn_direct_weight_channels(dW, dy, copies, acc, o0, C, rows, OH, OW, kH, kW, 1);
        return;
    }
    for (ptrdiff_t o = 0; o < OC; o++) {
        for (ptrdiff_t t = 0; t < T; t++) {
            const ptrdiff_t c = t / (kH * kW), i = t / kW % kH, j = t % kW;
            double sum = 0;  // one long chain: in Double
            for (ptrdiff_t p = 0; p < P; p++) sum += (double)(dy[o * P + p] * *abn_tap(copies, c, i, j, p, kW, rows, OW));
            dW[o * T + t] += (float)sum;
        }
    }
}

ABN_INLINE void abn_direct_conv_weight_gradient_body(int level, float *dW, const float *dy, const float *x, ptrdiff_t C, ptrdiff_t H,
                                                     ptrdiff_t W, ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH,
                                                     ptrdiff_t padW, float *scratch) {
    if (C == 1 && kH == 3 && kW == 3) {  // constant taps: the tap sums can live in registers
        abn_f16 acc[ABN_STEM_GRAD_Q * 9];
        if (level == ABN_AVX512) {
            abn_direct_weight_image(dW, dy, x, 1, H, W, OC, 3, 3, padH, padW, scratch, acc, ABN_STEM_GRAD_Q);
        } else {
            abn_direct_weight_image(dW, dy, x, 1, H, W, OC, 3, 3, padH, padW, scratch, acc, ABN_DIRECT_GRAD_Q);
        }
    } else {  // tap sums after the copies, 64-byte aligned
        abn_f16 *acc = (abn_f16 *)(((size_t)(scratch + abn_copies_count(C, H, W, kW, padH, padW)) + 63) & ~(size_t)63);
        abn_direct_weight_image(dW, dy, x, C, H, W, OC, kH, kW, padH, padW, scratch, acc, ABN_DIRECT_GRAD_Q);
    }
}

ABN_DISPATCH_LEVEL(abn_direct_conv_weight_gradient,
                   (float *dW, const float *dy, const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t OC, ptrdiff_t kH,
                    ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW, float *scratch),
                   (dW, dy, x, C, H, W, OC, kH, kW, padH, padW, scratch))

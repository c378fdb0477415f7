// Winograd F(2x2, 3x3) input and output transforms (the layout is WinogradLowering.swift's).
// Loops over contiguous tiles; explicit vectors where the compiler would not vectorize at
// every level on its own. Only additions and subtractions: every level rounds alike.
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

ptrdiff_t abn_winograd_input_scratch(ptrdiff_t tileRows, ptrdiff_t tileColumns) {
    return 8 * ((tileRows + 2) * tileColumns + 8) + 2 * tileColumns + 16;
}

ABN_INLINE void abn_winograd_input_body(float *restrict v, ptrdiff_t ld, const float *restrict x, ptrdiff_t images, ptrdiff_t C,
                                        ptrdiff_t H, ptrdiff_t W, ptrdiff_t Tw, ptrdiff_t tileRow0, ptrdiff_t Th,
                                        float *restrict scratch) {
    const ptrdiff_t stride = (Th * Tw + 3) / 4 * 4, firstRow = 2 * tileRow0 - 1;
    // B^T along the padded input rows: row s (input row firstRow + s) goes to plane k of hEven
    // (s even) or hOdd (s odd) at (s / 2) * Tw, so tile t finds its four rows at t and t + Tw.
    const ptrdiff_t plane = (Th + 2) * Tw + 8;
    float *hEven = scratch, *hOdd = hEven + 4 * plane;
    float *padded = hOdd + 4 * plane;
    memset(scratch, 0, sizeof(float) * (size_t)abn_winograd_input_scratch(Th, Tw));
    for (ptrdiff_t b = 0; b < images; b++) {
        for (ptrdiff_t c = 0; c < C; c++) {
            const float *channel = x + (b * C + c) * H * W;
            for (ptrdiff_t s = 0; s < 2 * Th + 2; s++) {
                float *h = (s % 2 == 0 ? hEven : hOdd) + (s / 2) * Tw;
                const ptrdiff_t r = firstRow + s;
                if (r < 0 || r >= H) {
                    for (int k = 0; k < 4; k++) memset(h + k * plane, 0, sizeof(float) * (size_t)Tw);
                    continue;
                }
                memcpy(padded + 1, channel + r * W, sizeof(float) * (size_t)W);  // zeros around
                // four tiles at a time: d0..d3 = padded[2tx ..< 2tx + 4] for tx ..< tx + 4
                for (ptrdiff_t tx = 0; tx < Tw; tx += 4) {
                    abn_f8 lo, hi;
                    memcpy(&lo, padded + 2 * tx, sizeof lo);
                    memcpy(&hi, padded + 2 * tx + 2, sizeof hi);
                    const abn_f4 d0 = __builtin_shufflevector(lo, lo, 0, 2, 4, 6), d1 = __builtin_shufflevector(lo, lo, 1, 3, 5, 7);
                    const abn_f4 d2 = __builtin_shufflevector(hi, hi, 0, 2, 4, 6), d3 = __builtin_shufflevector(hi, hi, 1, 3, 5, 7);
                    const abn_f4 t0 = d0 - d2, t1 = d1 + d2, t2 = d2 - d1, t3 = d1 - d3;
                    memcpy(h + tx, &t0, sizeof t0);
                    memcpy(h + plane + tx, &t1, sizeof t1);
                    memcpy(h + 2 * plane + tx, &t2, sizeof t2);
                    memcpy(h + 3 * plane + tx, &t3, sizeof t3);
                }
            }
            // B^T down the columns
            float *out = v + c * ld + b * stride;
            for (int k = 0; k < 4; k++) {
                const float *restrict e = hEven + k * plane, *restrict o = hOdd + k * plane;
                float *restrict v0 = out + k * C * ld, *restrict v1 = out + (4 + k) * C * ld;
                float *restrict v2 = out + (8 + k) * C * ld, *restrict v3 = out + (12 + k) * C * ld;
                for (ptrdiff_t t = 0; t < stride; t++) {
                    const float r0 = e[t], r1 = o[t], r2 = e[t + Tw], r3 = o[t + Tw];
                    v0[t] = r0 - r2;
                    v1[t] = r1 + r2;
                    v2[t] = r2 - r1;
                    v3[t] = r1 - r3;
                }
            }
        }
    }
}

ABN_DISPATCH(abn_winograd_input,
             (float *v, ptrdiff_t ld, const float *x, ptrdiff_t images, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
              ptrdiff_t tileColumns, ptrdiff_t tileRow0, ptrdiff_t tileRows, float *scratch),
             (v, ld, x, images, C, H, W, tileColumns, tileRow0, tileRows, scratch))

/// One tile row of outputs: dst[2k] = even[k] + add, dst[2k + 1] = odd[k] + add (+ dst).
ABN_INLINE void abn_interleave_row(float *restrict dst, const float *restrict even, const float *restrict odd, ptrdiff_t width,
                                   float add, int accumulate) {
    const ptrdiff_t pairs = width / 2;
    if (accumulate) {
        for (ptrdiff_t k = 0; k < pairs; k++) {
            dst[2 * k] += even[k] + add;
            dst[2 * k + 1] += odd[k] + add;
        }
        if (width % 2) dst[width - 1] += even[pairs] + add;
    } else {
        for (ptrdiff_t k = 0; k < pairs; k++) {
            dst[2 * k] = even[k] + add;
            dst[2 * k + 1] = odd[k] + add;
        }
        if (width % 2) dst[width - 1] = even[pairs] + add;
    }
}

ABN_INLINE void abn_winograd_output_body(float *restrict y, float *restrict m, ptrdiff_t ld, ptrdiff_t images, ptrdiff_t OC,
                                         ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t Tw, ptrdiff_t tileRow0, ptrdiff_t Th,
                                         const float *bias, int accumulate, float *restrict scratch) {
    const ptrdiff_t stride = (Th * Tw + 3) / 4 * 4, ps = OC * ld;
    const ptrdiff_t firstRow = 2 * tileRow0, endRow = OH < 2 * (tileRow0 + Th) ? OH : 2 * (tileRow0 + Th);
    // the four outputs of each tile
    float *restrict y00 = scratch, *restrict y01 = y00 + stride, *restrict y10 = y01 + stride, *restrict y11 = y10 + stride;
    for (ptrdiff_t b = 0; b < images; b++) {
        for (ptrdiff_t o = 0; o < OC; o++) {
            float *base = m + o * ld + b * stride;
            // position 4i + k of M, row i and column k of the 4x4 transform
            float *restrict a0 = base, *restrict a1 = base + ps, *restrict a2 = base + 2 * ps, *restrict a3 = base + 3 * ps;
            float *restrict b0 = base + 4 * ps, *restrict b1 = base + 5 * ps, *restrict b2 = base + 6 * ps, *restrict b3 = base + 7 * ps;
            float *restrict c0 = base + 8 * ps, *restrict c1 = base + 9 * ps, *restrict c2 = base + 10 * ps, *restrict c3 = base + 11 * ps;
            float *restrict d0 = base + 12 * ps, *restrict d1 = base + 13 * ps, *restrict d2 = base + 14 * ps, *restrict d3 = base + 15 * ps;
            // explicit vectors of 16 tiles (the compiler would leave 20 streams scalar at some levels)
            const abn_f16 zero = {0};
            ptrdiff_t t = 0;
            for (; t + 16 <= stride; t += 16) {
                abn_f16 v[16];
                float *const rows[16] = {a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3};
                for (int xi = 0; xi < 16; xi++) {
                    memcpy(&v[xi], rows[xi] + t, sizeof v[xi]);
                    memcpy(rows[xi] + t, &zero, sizeof zero);
                }
                // each row of M times A: p (output column 2tx), q (2tx + 1)
                const abn_f16 p0 = v[0] + v[1] + v[2], q0 = v[1] - v[2] - v[3];
                const abn_f16 p1 = v[4] + v[5] + v[6], q1 = v[5] - v[6] - v[7];
                const abn_f16 p2 = v[8] + v[9] + v[10], q2 = v[9] - v[10] - v[11];
                const abn_f16 p3 = v[12] + v[13] + v[14], q3 = v[13] - v[14] - v[15];
                const abn_f16 o00 = p0 + p1 + p2, o01 = q0 + q1 + q2, o10 = p1 - p2 - p3, o11 = q1 - q2 - q3;
                memcpy(y00 + t, &o00, sizeof o00);
                memcpy(y01 + t, &o01, sizeof o01);
                memcpy(y10 + t, &o10, sizeof o10);
                memcpy(y11 + t, &o11, sizeof o11);
            }
            for (; t < stride; t++) {
                const float p0 = a0[t] + a1[t] + a2[t], q0 = a1[t] - a2[t] - a3[t];
                const float p1 = b0[t] + b1[t] + b2[t], q1 = b1[t] - b2[t] - b3[t];
                const float p2 = c0[t] + c1[t] + c2[t], q2 = c1[t] - c2[t] - c3[t];
                const float p3 = d0[t] + d1[t] + d2[t], q3 = d1[t] - d2[t] - d3[t];
                a0[t] = a1[t] = a2[t] = a3[t] = 0;
                b0[t] = b1[t] = b2[t] = b3[t] = 0;
                c0[t] = c1[t] = c2[t] = c3[t] = 0;
                d0[t] = d1[t] = d2[t] = d3[t] = 0;
                y00[t] = p0 + p1 + p2;
                y01[t] = q0 + q1 + q2;
                y10[t] = p1 - p2 - p3;
                y11[t] = q1 - q2 - q3;
            }
            float *channel = y + (b * OC + o) * OH * OW;
            const float add = bias != NULL ? bias[o] : 0;
            for (ptrdiff_t r = firstRow; r < endRow; r++) {
                const ptrdiff_t tiles = (r / 2 - tileRow0) * Tw;
                abn_interleave_row(channel + r * OW, (r % 2 == 0 ? y00 : y10) + tiles, (r % 2 == 0 ? y01 : y11) + tiles, OW, add, accumulate);
            }
        }
    }
}

ABN_DISPATCH(abn_winograd_output,
             (float *y, float *m, ptrdiff_t ld, ptrdiff_t images, ptrdiff_t outC, ptrdiff_t outH, ptrdiff_t outW,
              ptrdiff_t tileColumns, ptrdiff_t tileRow0, ptrdiff_t tileRows, const float *bias, int accumulate, float *scratch),
             (y, m, ld, images, outC, outH, outW, tileColumns, tileRow0, tileRows, bias, accumulate, scratch))

ABN_INLINE void abn_winograd_output_gradient_body(float *restrict dm, ptrdiff_t ld, const float *restrict dy, ptrdiff_t images,
                                                  ptrdiff_t OC, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t Tw, ptrdiff_t tileRow0,
                                                  ptrdiff_t Th, float *restrict scratch) {
    const ptrdiff_t stride = (Th * Tw + 3) / 4 * 4, ps = OC * ld;
    const ptrdiff_t firstRow = 2 * tileRow0, endRow = OH < 2 * (tileRow0 + Th) ? OH : 2 * (tileRow0 + Th);
    // each tile's dY [a b; c d]; entries beyond the image and its tiles are never written and stay zero
    float *restrict a = scratch, *restrict b = a + stride, *restrict c = b + stride, *restrict d = c + stride;
    memset(scratch, 0, sizeof(float) * (size_t)(4 * stride));
    for (ptrdiff_t image = 0; image < images; image++) {
        for (ptrdiff_t o = 0; o < OC; o++) {
            const float *channel = dy + (image * OC + o) * OH * OW;
            for (ptrdiff_t r = firstRow; r < endRow; r++) {
                const ptrdiff_t tiles = (r / 2 - tileRow0) * Tw;
                float *restrict left = (r % 2 == 0 ? a : c) + tiles, *restrict right = (r % 2 == 0 ? b : d) + tiles;
                const float *restrict src = channel + r * OW;
                for (ptrdiff_t k = 0; k < OW / 2; k++) {
                    left[k] = src[2 * k];
                    right[k] = src[2 * k + 1];
                }
                if (OW % 2) left[OW / 2] = src[OW - 1];
            }
            float *out = dm + o * ld + image * stride;
            // A times each row [a b] and [c d] (top, bottom), then A down the columns
            for (ptrdiff_t t = 0; t < stride; t++) {
                const float top[4] = {a[t], a[t] + b[t], a[t] - b[t], -b[t]};
                const float bottom[4] = {c[t], c[t] + d[t], c[t] - d[t], -d[t]};
                for (int k = 0; k < 4; k++) {
                    out[k * ps + t] = top[k];
                    out[(4 + k) * ps + t] = top[k] + bottom[k];
                    out[(8 + k) * ps + t] = top[k] - bottom[k];
                    out[(12 + k) * ps + t] = -bottom[k];
                }
            }
        }
    }
}

ABN_DISPATCH(abn_winograd_output_gradient,
             (float *dm, ptrdiff_t ld, const float *dy, ptrdiff_t images, ptrdiff_t outC, ptrdiff_t outH, ptrdiff_t outW,
              ptrdiff_t tileColumns, ptrdiff_t tileRow0, ptrdiff_t tileRows, float *scratch),
             (dm, ld, dy, images, outC, outH, outW, tileColumns, tileRow0, tileRows, scratch))

// 2-D max pooling over image planes: square kernel k, stride s, padding p, the winner of each
// window recomputed from the input for the backward pass.
#include "CKernels.h"
#include "Levels.h"

#include <math.h>
#include <string.h>

/// The window's winner, as PyTorch's CPU kernel picks it: scanning the in-bounds positions in
/// row-major order from -infinity (at the first position), a value greater than the best so far,
/// or a NaN, takes over; so the first of equal maxima wins, and the last NaN. Returns its index
/// in the plane x (H, W); *value = its value.
ABN_INLINE ptrdiff_t abn_max_pool_winner(float *value, const float *x, ptrdiff_t H, ptrdiff_t W, ptrdiff_t k, ptrdiff_t ih0,
                                         ptrdiff_t iw0) {
    const ptrdiff_t top = ih0 > 0 ? ih0 : 0, bottom = ih0 + k < H ? ih0 + k : H;
    const ptrdiff_t left = iw0 > 0 ? iw0 : 0, right = iw0 + k < W ? iw0 + k : W;
    ptrdiff_t best = top * W + left;
    float m = -INFINITY;
    for (ptrdiff_t ih = top; ih < bottom; ih++) {
        for (ptrdiff_t iw = left; iw < right; iw++) {
            const float v = x[ih * W + iw];
            if (v > m || v != v) {
                m = v;
                best = ih * W + iw;
            }
        }
    }
    *value = m;
    return best;
}

/// The same rule for the 3x3 stride-2 windows of 16 outputs whose first window's top left is
/// at x, rows W apart, all inside the plane (x[2 W + 32] the last value read): *value = the
/// winners' values, *offset = their positions relative to x.
ABN_INLINE void abn_max_pool_3x3s2_16(abn_f16 *value, abn_i16 *offset, const float *x, ptrdiff_t W) {
    abn_f16 m = (abn_f16){0} - INFINITY;
    abn_i16 o = abn_lanes16 * 2;
    for (int i = 0; i < 3; i++) {
        const float *r = x + i * W;
        abn_f16 a, b;
        memcpy(&a, r, sizeof a);
        memcpy(&b, r + 16, sizeof b);
        const abn_f16 last = (abn_f16){0} + r[32];
        const abn_f16 even = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const abn_f16 odd = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        const abn_f16 next = __builtin_shufflevector(even, last, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
        const abn_f16 column[3] = {even, odd, next};
        for (int j = 0; j < 3; j++) {
            const abn_f16 v = column[j];
            const abn_i16 take = (v > m) | (v != v);
            m = (abn_f16)(((abn_i16)v & take) | ((abn_i16)m & ~take));
            o = ((abn_lanes16 * 2 + (int)(i * W + j)) & take) | (o & ~take);
        }
    }
    *value = m;
    *offset = o;
}

/// Output row oh of plane x (H, W), output columns in increasing order: when row is not NULL,
/// row[ow] = the window's maximum; when gradient is not NULL, gradient[winner] += dy[ow].
ABN_INLINE void abn_max_pool_row(float *row, float *gradient, const float *dy, const float *x, ptrdiff_t H, ptrdiff_t W,
                                 ptrdiff_t OW, ptrdiff_t k, ptrdiff_t s, ptrdiff_t p, ptrdiff_t oh) {
    const ptrdiff_t ih0 = oh * s - p;
    // columns first..<last have their windows inside the row
    const ptrdiff_t first = (p + s - 1) / s, end = W + p - k >= 0 ? (W + p - k) / s + 1 : 0, last = end < OW ? end : OW;
    ptrdiff_t ow = 0;
    if (k == 3 && s == 2 && ih0 >= 0 && ih0 + 3 <= H && last - first >= 16) {
        for (; ow < first; ow++) {
            float v;
            const ptrdiff_t winner = abn_max_pool_winner(&v, x, H, W, k, ih0, ow * s - p);
            if (row != NULL) row[ow] = v;
            if (gradient != NULL) gradient[winner] += dy[ow];
        }
        // blocks of 16, the last one moved back to end at last (its lanes before ow done already)
        for (ptrdiff_t at = first; ow < last; at = ow + 16 <= last ? ow : last - 16) {
            const float *corner = x + ih0 * W + at * 2 - p;
            if (ih0 + 4 < H) {  // the next output row's new input rows (the hardware prefetcher lags on these)
                __builtin_prefetch(corner + 3 * W);
                __builtin_prefetch(corner + 3 * W + 16);
                __builtin_prefetch(corner + 4 * W);
                __builtin_prefetch(corner + 4 * W + 16);
            }
            abn_f16 m;
            abn_i16 offset;
            abn_max_pool_3x3s2_16(&m, &offset, corner, W);
            if (row != NULL) memcpy(row + at, &m, sizeof m);
            if (gradient != NULL) {
                for (ptrdiff_t l = ow - at; l < 16; l++) gradient[corner - x + offset[l]] += dy[at + l];
            }
            ow = at + 16;
        }
    }
    for (; ow < OW; ow++) {
        float v;
        const ptrdiff_t winner = abn_max_pool_winner(&v, x, H, W, k, ih0, ow * s - p);
        if (row != NULL) row[ow] = v;
        if (gradient != NULL) gradient[winner] += dy[ow];
    }
}

ABN_INLINE void abn_max_pool_forward_body(float *y, const float *x, ptrdiff_t planes, ptrdiff_t H, ptrdiff_t W,
                                          ptrdiff_t k, ptrdiff_t s, ptrdiff_t p) {
    const ptrdiff_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    for (ptrdiff_t c = 0; c < planes; c++) {
        for (ptrdiff_t oh = 0; oh < OH; oh++) {
            abn_max_pool_row(y + (c * OH + oh) * OW, NULL, NULL, x + c * H * W, H, W, OW, k, s, p, oh);
        }
    }
}

ABN_INLINE void abn_max_pool_backward_body(float *dx, const float *dy, const float *x, ptrdiff_t planes,
                                           ptrdiff_t H, ptrdiff_t W, ptrdiff_t k, ptrdiff_t s, ptrdiff_t p) {
    const ptrdiff_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
    for (ptrdiff_t c = 0; c < planes; c++) {
        float *gradient = dx + c * H * W;
        ptrdiff_t zeroed = 0;  // rows, each zeroed just before the first window reaching it (still in cache for the adds)
        for (ptrdiff_t oh = 0; oh < OH; oh++) {
            const ptrdiff_t reach = oh * s - p + k < H ? oh * s - p + k : H;
            if (reach > zeroed) {
                memset(gradient + zeroed * W, 0, (size_t)((reach - zeroed) * W) * sizeof(float));
                zeroed = reach;
            }
            abn_max_pool_row(NULL, gradient, dy + (c * OH + oh) * OW, x + c * H * W, H, W, OW, k, s, p, oh);
        }
        memset(gradient + zeroed * W, 0, (size_t)((H - zeroed) * W) * sizeof(float));
    }
}

ABN_DISPATCH(abn_max_pool_forward,
             (float *y, const float *x, ptrdiff_t planes, ptrdiff_t H, ptrdiff_t W, ptrdiff_t k, ptrdiff_t s, ptrdiff_t p),
             (y, x, planes, H, W, k, s, p))

ABN_DISPATCH(abn_max_pool_backward,
             (float *dx, const float *dy, const float *x, ptrdiff_t planes, ptrdiff_t H, ptrdiff_t W, ptrdiff_t k, ptrdiff_t s,
              ptrdiff_t p),
             (dx, dy, x, planes, H, W, k, s, p))

// Winograd F(2x2, 3x3) kernel transform U = G g G^T and its gradient dW = G^T dU G (see
// WinogradLowering.swift). Only additions, subtractions and halvings: every level rounds alike.
#include "CKernels.h"
#include "Levels.h"

#pragma clang fp contract(off)

ABN_INLINE void abn_winograd_kernel_body(float *restrict u, const float *restrict weight, ptrdiff_t pairs, ptrdiff_t first,
                                         ptrdiff_t count) {
    for (ptrdiff_t pair = first; pair < first + count; pair++) {
        const float *k = weight + pair * 9;
        // column j of G g (rows i = 0..3), then row i of (G g) G^T
        float col[3][4];
        for (int j = 0; j < 3; j++) {
            const float x = k[j], y = k[3 + j], z = k[6 + j];
            col[j][0] = x;
            col[j][1] = 0.5f * (x + y + z);
            col[j][2] = 0.5f * (x - y + z);
            col[j][3] = z;
        }
        for (int i = 0; i < 4; i++) {
            u[(4 * i) * pairs + pair] = col[0][i];
            u[(4 * i + 1) * pairs + pair] = 0.5f * (col[0][i] + col[1][i] + col[2][i]);
            u[(4 * i + 2) * pairs + pair] = 0.5f * (col[0][i] - col[1][i] + col[2][i]);
            u[(4 * i + 3) * pairs + pair] = col[2][i];
        }
    }
}

ABN_DISPATCH(abn_winograd_kernel, (float *u, const float *weight, ptrdiff_t pairs, ptrdiff_t first, ptrdiff_t count),
             (u, weight, pairs, first, count))

ABN_INLINE void abn_winograd_kernel_gradient_body(float *restrict dW, const float *restrict s, ptrdiff_t pairs, ptrdiff_t first,
                                                  ptrdiff_t count, int accumulate) {
    for (ptrdiff_t pair = first; pair < first + count; pair++) {
        // rows 0..2 of G^T S, column k
        float t[3][4];
        for (int k = 0; k < 4; k++) {
            const float s0 = s[k * pairs + pair], s1 = s[(4 + k) * pairs + pair];
            const float s2 = s[(8 + k) * pairs + pair], s3 = s[(12 + k) * pairs + pair];
            t[0][k] = s0 + 0.5f * (s1 + s2);
            t[1][k] = 0.5f * (s1 - s2);
            t[2][k] = 0.5f * (s1 + s2) + s3;
        }
        // row i of (G^T S) G
        float *target = dW + pair * 9;
        for (int i = 0; i < 3; i++) {
            const float *r = t[i];
            const float values[3] = {r[0] + 0.5f * (r[1] + r[2]), 0.5f * (r[1] - r[2]), 0.5f * (r[1] + r[2]) + r[3]};
            for (int j = 0; j < 3; j++) target[3 * i + j] = accumulate ? target[3 * i + j] + values[j] : values[j];
        }
    }
}

ABN_DISPATCH(abn_winograd_kernel_gradient,
             (float *dW, const float *s, ptrdiff_t pairs, ptrdiff_t first, ptrdiff_t count, int accumulate),
             (dW, s, pairs, first, count, accumulate))

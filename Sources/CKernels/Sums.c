// Sums over one image plane (the norm layers' batch statistics, bias gradients). A plain running
// sum is one dependency chain at one add per add-latency; 16 independent lanes vectorize, and
// blocks of 4096 values keep each Float lane short enough to stay accurate on large planes.
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

#pragma clang fp contract(off)

enum { ABN_SUM_BLOCK = 4096 };

/// The sum of p[0..<count] (squares: of (p[i] - center)^2), one block.
ABN_INLINE double abn_block_sum(const float *p, ptrdiff_t count, float center, int squares) {
    const abn_f16 zero = {0}, c = zero + center;
    abn_f16 lanes = zero;
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) {
        abn_f16 v;
        memcpy(&v, p + i, sizeof v);
        if (squares) {
            const abn_f16 d = v - c;
            lanes += d * d;
        } else {
            lanes += v;
        }
    }
    float tail = 0;
    for (; i < count; i++) {
        const float d = p[i] - center;
        tail += squares ? d * d : p[i];
    }
    return (double)abn_f16_total(&lanes) + (double)tail;
}

ABN_INLINE void abn_plane_total(const float *p, ptrdiff_t count, float center, int squares, double *sum) {
    double total = 0;
    for (ptrdiff_t start = 0; start < count; start += ABN_SUM_BLOCK) {
        const ptrdiff_t n = count - start < ABN_SUM_BLOCK ? count - start : ABN_SUM_BLOCK;
        total += abn_block_sum(p + start, n, center, squares);
    }
    *sum = total;
}

ABN_INLINE void abn_plane_sum_body(const float *p, ptrdiff_t count, double *sum) { abn_plane_total(p, count, 0, 0, sum); }
ABN_INLINE void abn_plane_squares_body(const float *p, ptrdiff_t count, float center, double *sum) {
    abn_plane_total(p, count, center, 1, sum);
}

ABN_DISPATCH(abn_plane_sum, (const float *p, ptrdiff_t count, double *sum), (p, count, sum))
ABN_DISPATCH(abn_plane_squares, (const float *p, ptrdiff_t count, float center, double *sum), (p, count, center, sum))

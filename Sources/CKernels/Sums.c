// Sums over one image plane (the norm layers' batch statistics, bias gradients) in 16 Double
// lanes: a plain running sum is one dependency chain at one add per add-latency, and Float
// lanes lose the digits a large mean needs (inputs around 200: the golden cases).
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

#pragma clang fp contract(off)

/// The sum of p[0..<count], or with `squares` of (p[i] - center)^2 (each term in Float).
ABN_INLINE void abn_plane_total(const float *p, ptrdiff_t count, float center, int squares, double *sum) {
    const abn_f16 c = (abn_f16){0} + center;
    abn_d16 lanes = {0};
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) {
        abn_f16 v;
        memcpy(&v, p + i, sizeof v);
        if (squares) {
            const abn_f16 d = v - c;
            v = d * d;
        }
        lanes += __builtin_convertvector(v, abn_d16);
    }
    double tail = 0;
    for (; i < count; i++) {
        const float d = p[i] - center;
        tail += (double)(squares ? d * d : p[i]);
    }
    *sum = abn_d16_total(&lanes) + tail;
}

ABN_INLINE void abn_plane_sum_body(const float *p, ptrdiff_t count, double *sum) { abn_plane_total(p, count, 0, 0, sum); }
ABN_INLINE void abn_plane_squares_body(const float *p, ptrdiff_t count, float center, double *sum) {
    abn_plane_total(p, count, center, 1, sum);
}

ABN_DISPATCH(abn_plane_sum, (const float *p, ptrdiff_t count, double *sum), (p, count, sum))
ABN_DISPATCH(abn_plane_squares, (const float *p, ptrdiff_t count, float center, double *sum), (p, count, center, sum))

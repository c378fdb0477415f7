// The optimizer's update, one pass over the flat parameters.
#include "CKernels.h"
#include "Levels.h"

#pragma clang fp contract(off)  // the roundings of the Swift reference form at every level

ABN_INLINE void abn_sgd_body(float *restrict p, float *restrict v, const float *restrict grad, ptrdiff_t count, float lr, float mu,
                             float wd, int nesterov) {
    if (nesterov) {
        for (ptrdiff_t i = 0; i < count; i++) {
            const float g = grad[i] + wd * p[i], velocity = mu * v[i] + g;
            v[i] = velocity;
            p[i] -= lr * (g + mu * velocity);
        }
    } else {
        for (ptrdiff_t i = 0; i < count; i++) {
            const float g = grad[i] + wd * p[i], velocity = mu * v[i] + g;
            v[i] = velocity;
            p[i] -= lr * velocity;
        }
    }
}

ABN_DISPATCH(abn_sgd,
             (float *parameters, float *velocity, const float *gradients, ptrdiff_t count, float lr, float momentum, float weightDecay,
              int nesterov),
             (parameters, velocity, gradients, count, lr, momentum, weightDecay, nesterov))

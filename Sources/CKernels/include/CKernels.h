// Vector kernels in C, each compiled for AVX-512, AVX2+FMA and the x86-64 baseline (per-function
// target attributes, no build flags) and chosen once, at first use, from the processor.
// ABN_SIMD=avx2|baseline forces a lower level (a higher one than the processor has is refused).
// Every level computes bit-identical results: the kernels only add, subtract and copy.
#ifndef ABN_CKERNELS_H
#define ABN_CKERNELS_H

#include <stddef.h>

/// The instruction set in use: 3 AVX-512 (F, VL, BW, DQ), 2 AVX2 + FMA, 1 baseline x86-64
/// (or another architecture).
int abn_simd_level(void);
/// The best level this processor supports.
int abn_simd_best_level(void);
/// Selects a level for the kernels (tests and benchmarks); returns 0 when the processor lacks it.
int abn_simd_select(int level);
/// "avx512", "avx2" or "baseline".
const char *abn_simd_name(int level);

/// Winograd F(2x2, 3x3) input transform V = B^T d B (see WinogradLowering.swift): for images
/// 0..<images of x (images, C, H, W) and tile rows tileRow0..<tileRow0 + tileRows, writes
/// position xi of channel c, tile t of image b at v[(xi * C + c) * ld + b * stride + t],
/// stride = tileRows * tileColumns rounded up to 4. scratch holds
/// abn_winograd_input_scratch(tileRows, tileColumns) floats.
void abn_winograd_input(float *v, ptrdiff_t ld, const float *x, ptrdiff_t images, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
                        ptrdiff_t tileColumns, ptrdiff_t tileRow0, ptrdiff_t tileRows, float *scratch);
ptrdiff_t abn_winograd_input_scratch(ptrdiff_t tileRows, ptrdiff_t tileColumns);

/// Winograd output transform Y = A^T M A (+ bias, + y when accumulate) for the output rows of
/// tile rows tileRow0..<tileRow0 + tileRows, from m laid out as abn_winograd_input's v (16
/// positions of outC rows); zeroes m as it reads it. scratch holds 4 * stride floats.
void abn_winograd_output(float *y, float *m, ptrdiff_t ld, ptrdiff_t images, ptrdiff_t outC, ptrdiff_t outH, ptrdiff_t outW,
                         ptrdiff_t tileColumns, ptrdiff_t tileRow0, ptrdiff_t tileRows, const float *bias, int accumulate,
                         float *scratch);

/// Norm forward with leaky ReLU over one plane: z = y * (y < 0 ? slope : 1) with
/// y = (x - center) * scale + beta, no fused multiply-add. z may be x.
void abn_norm_leaky_plane(float *z, const float *x, ptrdiff_t pixels, float scale, float center, float beta, float slope);

/// InPlace-ABN / standard backward with leaky ReLU over count values of one plane: from the
/// gradient g at the output and the output z, dy = g * act'(z) and xhat = (u - center) * factor
/// with u = x when x is given, else z inverted through the activation. Sums: sums[0] = sum dy,
/// sums[1] = sum dy * xhat (accumulated in 16 Double lanes, added in a fixed order).
void abn_leaky_backward_sums(const float *g, const float *z, const float *x, ptrdiff_t count, float slope, float center, float factor,
                             double *sums);
/// Write: q (holding g on entry) = a * (dy - m1 - xhat * m2).
void abn_leaky_backward_write(float *q, const float *z, const float *x, ptrdiff_t count, float slope, float center, float factor,
                              float a, float m1, float m2);

#endif

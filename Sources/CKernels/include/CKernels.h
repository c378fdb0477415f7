// Vector kernels in C, each compiled for AVX-512, AVX2+FMA and the x86-64 baseline (per-function
// target attributes, no build flags) and chosen once, at first use, from the processor.
// ABN_SIMD=avx2|baseline forces a lower level (a higher one than the processor has is refused).
// Every level computes bit-identical results except the direct convolution: the Winograd
// transforms, the stride-2 im2col and col2im and the average pool add, subtract, halve, scale
// or copy, with no multiply-add to fuse, and the plane sums, norm and SGD kernels turn fused
// multiply-adds off. The direct convolution (DirectConvolution.c) lets its multiply-adds fuse
// at AVX2 and AVX-512, so those levels round slightly differently from the baseline; each
// level is deterministic. (The tests compare the levels bit for bit, the direct convolution
// against Double references.)
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

/// Winograd output-gradient transform dM = A dY A^T for the 2x2 output tiles of tile rows
/// tileRow0..<tileRow0 + tileRows of dy (images, outC, outH, outW) (zero beyond outH, outW),
/// laid out as abn_winograd_input's v, zeros in the columns past each image's tiles. scratch
/// holds 4 * stride floats.
void abn_winograd_output_gradient(float *dm, ptrdiff_t ld, const float *dy, ptrdiff_t images, ptrdiff_t outC, ptrdiff_t outH,
                                  ptrdiff_t outW, ptrdiff_t tileColumns, ptrdiff_t tileRow0, ptrdiff_t tileRows, float *scratch);

/// Direct convolution of one image, stride 1, dilation 1, for few input channels (the stem):
/// y (OC, OH, OW) = (accumulate ? y : 0) + bias[o] + sum over c, i, j of w (OC, C, kH, kW) times
/// x (C, H, W) at (oh + i - padH, ow + j - padW), zero outside, with OH = H + 2 padH - kH + 1
/// (likewise OW). bias may be NULL. scratch holds abn_direct_scratch(...) floats.
void abn_direct_conv(float *y, const float *x, const float *w, const float *bias, int accumulate, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,
                     ptrdiff_t OC, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW, float *scratch);
ptrdiff_t abn_direct_scratch(ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW);
/// Its weight gradient for one image, added to dW (OC, C, kH, kW), from dy (OC, OH, OW) and x.
/// scratch holds abn_direct_weight_scratch(...) floats.
void abn_direct_conv_weight_gradient(float *dW, const float *dy, const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t OC,
                                     ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW, float *scratch);
ptrdiff_t abn_direct_weight_scratch(ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW);

/// Im2col of one image x (C, H, W) for a stride-2 convolution (dilation 1): row (c, i, j) of cols
/// (C*kH*kW rows, ld apart) gets at column oh * OW + ow the pixel x[c][2 oh + i - padH][2 ow + j -
/// padW] (zero outside), and may write up to 15 columns past each image's (the next image's, or
/// slack after the last).
void abn_stride2_im2col(float *cols, ptrdiff_t ld, const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW,
                        ptrdiff_t padH, ptrdiff_t padW);
/// Its transpose: dx (C, H, W) = (accumulate ? dx : 0) + the sum of the columns over the taps
/// each pixel feeds. Reads up to 15 floats before and after each row's columns; scratch holds
/// abn_stride2_col2im_scratch(W, padW) floats.
void abn_stride2_col2im(float *dx, const float *cols, ptrdiff_t ld, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW,
                        ptrdiff_t padH, ptrdiff_t padW, int accumulate, float *scratch);
ptrdiff_t abn_stride2_col2im_scratch(ptrdiff_t W, ptrdiff_t padW);

/// Winograd kernel transform for kernels first..<first + count of weight (pairs, 3, 3): position
/// xi of kernel p, (G g G^T)[xi], at u[xi * pairs + p].
void abn_winograd_kernel(float *u, const float *weight, ptrdiff_t pairs, ptrdiff_t first, ptrdiff_t count);
/// Its gradient: dW (pairs, 3, 3) = (accumulate ? dW : 0) + G^T S G for kernels first..<first +
/// count, S's position xi of kernel p at s[xi * pairs + p].
void abn_winograd_kernel_gradient(float *dW, const float *s, ptrdiff_t pairs, ptrdiff_t first, ptrdiff_t count, int accumulate);

/// *sum = the sum of p[0..<count], in 16 Double lanes added in a fixed order.
void abn_plane_sum(const float *p, ptrdiff_t count, double *sum);
/// *sum = the sum of (p[i] - center)^2 over p[0..<count], likewise.
void abn_plane_squares(const float *p, ptrdiff_t count, float center, double *sum);

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

/// One SGD step over count parameters, in place (PyTorch's form, dampening 0):
/// g = grad + wd * p; v = momentum * v + g; p -= lr * (nesterov ? g + momentum * v : v).
void abn_sgd(float *parameters, float *velocity, const float *gradients, ptrdiff_t count, float lr, float momentum,
             float weightDecay, int nesterov);

/// y[p] = mean of plane p of x (planes, pixels): 16 Float lanes added in a fixed order.
void abn_average_planes(float *y, const float *x, ptrdiff_t planes, ptrdiff_t pixels);

/// Max pooling of x (planes, H, W) into y (planes, OH, OW), OH = (H + 2p - k) / s + 1
/// (likewise OW), square kernel k, stride s, padding p < k: each output is its window's winner,
/// scanning the in-bounds positions in row-major order, a value greater than the best so far
/// or a NaN taking over (the first of equal maxima wins, and the last NaN).
void abn_max_pool_forward(float *y, const float *x, ptrdiff_t planes, ptrdiff_t H, ptrdiff_t W, ptrdiff_t k, ptrdiff_t s, ptrdiff_t p);
/// Its gradient: dx (planes, H, W) = 0, then dy (planes, OH, OW) of each output added to its
/// winner's position in x, outputs in row-major order.
void abn_max_pool_backward(float *dx, const float *dy, const float *x, ptrdiff_t planes, ptrdiff_t H, ptrdiff_t W, ptrdiff_t k,
                           ptrdiff_t s, ptrdiff_t p);

#endif

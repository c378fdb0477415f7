// Im2col and col2im of stride-2 convolutions (dilation 1). Output column ow of kernel tap j
// reads input column 2 ow + j - padW: a stride-2 gather. The im2col makes each 16 values of a
// slice from two loads of the input row and one shuffle (the even lanes), or a slice of at most
// 8 values from one load, masked to the row's columns, and stores them whole: a slice's last
// vector may write up to 15 values past it, which the next slice of the same row (or the row's
// slack of 16 columns after the last image) takes.
// The col2im splits each (zero-padded) row into its even and odd columns, so that every tap's
// OW values are one contiguous slice of one half (j even: even[j/2 + ow], j odd: odd[(j-1)/2 +
// ow]), sums each 16-value block of a half in a register and joins the halves with shuffles; it
// reads up to 15 values around a slice (the columns need 16 of slack on both sides).
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

/// Values per half of a padded row of Wp, rounded up to whole vectors.
ABN_INLINE ptrdiff_t abn_halves16(ptrdiff_t W, ptrdiff_t padW) { return ((W + 2 * padW + 1) / 2 + 15) / 16 * 16; }

/// Scratch of the col2im: a padded row (2 halves16) and its two halves (halves16 + 16 each:
/// room for a last block's reads).
ptrdiff_t abn_stride2_col2im_scratch(ptrdiff_t W, ptrdiff_t padW) { return 4 * abn_halves16(W, padW) + 32; }

/// The output rows oh (with kernel row i = r - 2 oh) that read padded row r: oh from
/// *first through *last (empty when *first > *last).
ABN_INLINE void abn_rows_reading(ptrdiff_t r, ptrdiff_t kH, ptrdiff_t OH, ptrdiff_t *first, ptrdiff_t *last) {
    *first = r - kH + 1 > 0 ? (r - kH + 2) / 2 : 0;
    *last = r / 2 < OH - 1 ? r / 2 : OH - 1;
}

/// dst[0 ..< n] = src[0 ..< n] (plus dst's values when accumulate), writing nothing past n: in
/// vectors of 16, the last one overlapping the one before, or for n < 16 in 4s and 1s. (Inline:
/// rows are too short for a call to memcpy to pay.)
ABN_INLINE void abn_copy_row(float *restrict dst, const float *restrict src, ptrdiff_t n, int accumulate) {
    if (n >= 16) {
        for (ptrdiff_t k = 0; k < n; k += 16) {
            const ptrdiff_t at = k + 16 <= n ? k : n - 16;
            abn_f16 v;
            memcpy(&v, src + at, sizeof v);
            if (accumulate) {
                abn_f16 old;
                memcpy(&old, dst + at, sizeof old);
                // lanes below k - at were added by the vector before
                v = (abn_f16)(((abn_i16)(old + v) & (abn_lanes16 >= (int)(k - at))) | ((abn_i16)old & (abn_lanes16 < (int)(k - at))));
            }
            memcpy(dst + at, &v, sizeof v);
        }
        return;
    }
    ptrdiff_t k = 0;
    for (; k + 4 <= n; k += 4) {
        abn_f4 v, old = {0};
        memcpy(&v, src + k, sizeof v);
        if (accumulate) memcpy(&old, dst + k, sizeof old);
        v += old;
        memcpy(dst + k, &v, sizeof v);
    }
    for (; k < n; k++) dst[k] = (accumulate ? dst[k] : 0) + src[k];
}

/// row[2k] = even[k], row[2k + 1] = odd[k] for k < halves16.
ABN_INLINE void abn_join_row(float *restrict row, const float *restrict even, const float *restrict odd, ptrdiff_t halves16) {
    for (ptrdiff_t k = 0; k < halves16; k += 16) {
        abn_f16 e, o;
        memcpy(&e, even + k, sizeof e);
        memcpy(&o, odd + k, sizeof o);
        const abn_f16 low = __builtin_shufflevector(e, o, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        const abn_f16 high = __builtin_shufflevector(e, o, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        memcpy(row + 2 * k, &low, sizeof low);
        memcpy(row + 2 * k + 16, &high, sizeof high);
    }
}

/// dst[m] = src[2m] for m < 16 where first + 2m is a column of the row ([0, W)), else 0 (src:
/// 32 floats).
ABN_INLINE void abn_every_other16(float *restrict dst, const float *restrict src, ptrdiff_t first, ptrdiff_t W) {
    abn_f16 a, b;
    memcpy(&a, src, sizeof a);
    memcpy(&b, src + 16, sizeof b);
    const abn_i16 column = abn_lanes16 * 2 + (int)first, inside = (column >= 0) & (column < (int)W);
    const abn_f16 even = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const abn_f16 v = (abn_f16)((abn_i16)even & inside);
    memcpy(dst, &v, sizeof v);
}

/// The same for m < 8 (src: 16 floats): rows of at most 8 output columns.
ABN_INLINE void abn_every_other8(float *restrict dst, const float *restrict src, ptrdiff_t first, ptrdiff_t W) {
    abn_f16 a;
    memcpy(&a, src, sizeof a);
    const abn_i8 lanes = {0, 1, 2, 3, 4, 5, 6, 7};
    const abn_i8 column = lanes * 2 + (int)first, inside = (column >= 0) & (column < (int)W);
    const abn_f8 even = __builtin_shufflevector(a, a, 0, 2, 4, 6, 8, 10, 12, 14);
    const abn_f8 v = (abn_f8)((abn_i8)even & inside);
    memcpy(dst, &v, sizeof v);
}

/// One slice block: the values of x from at, every other (16, or 8 when narrow), masked to the
/// row's columns. With edge set, reads nothing outside x[0 ..< size] (rows at the image's ends).
ABN_INLINE void abn_slice_block(float *restrict dst, const float *restrict x, ptrdiff_t at, ptrdiff_t first, ptrdiff_t W,
                                ptrdiff_t size, int narrow, int edge) {
    float window[32] = {0};
    const float *src = x + at;
    if (edge) {
        for (ptrdiff_t m = 0; m < 32; m++)
            if (at + m >= 0 && at + m < size) window[m] = x[at + m];
        src = window;
    }
    if (narrow) abn_every_other8(dst, src, first, W);
    else abn_every_other16(dst, src, first, W);
}

ABN_INLINE void abn_stride2_im2col_body(float *cols, ptrdiff_t ld, const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH,
                                        ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW) {
    const ptrdiff_t OH = (H + 2 * padH - kH) / 2 + 1, OW = (W + 2 * padW - kW) / 2 + 1, size = C * H * W;
    const int narrow = OW <= 8;  // slices of 8 values from 16 floats
    const abn_f16 zero = {0};
    for (ptrdiff_t c = 0; c < C; c++) {
        // the next channel's input fetched meanwhile (the next image's after the last channel)
        for (ptrdiff_t k = 0; k < H * W; k += 16) __builtin_prefetch(x + (c + 1) * H * W + k);
        for (ptrdiff_t i = 0; i < kH; i++) {
            // output rows lo ..< hi read input rows 2 oh + i - padH inside the image, the others padding
            ptrdiff_t lo = 0, hi = OH;
            while (lo < OH && 2 * lo + i < padH) lo++;
            while (hi > lo && 2 * (hi - 1) + i - padH >= H) hi--;
            for (ptrdiff_t j = 0; j < kW; j++) {
                float *target = cols + ((c * kH + i) * kW + j) * ld;
                for (ptrdiff_t k0 = 0; k0 < OW; k0 += 16) {
                    // output columns k ..< k + 16 (a last block moved back to end at OW), whose
                    // values for output row oh are every other of the 32 floats from base + 2 oh W
                    const ptrdiff_t k = OW >= 16 && k0 + 16 > OW ? OW - 16 : k0, first = 2 * k + j - padW;
                    const ptrdiff_t base = (c * H + i - padH) * W + first;
                    ptrdiff_t from = lo, to = hi;  // rows whose 32 floats lie inside the image
                    while (from < to && base + 2 * from * W < 0) from++;
                    while (to > from && base + 2 * (to - 1) * W + 32 > size) to--;
                    float *dst = target + k;
                    for (ptrdiff_t oh = 0; oh < lo; oh++) memcpy(dst + oh * OW, &zero, sizeof zero);
                    for (ptrdiff_t oh = lo; oh < from; oh++) abn_slice_block(dst + oh * OW, x, base + 2 * oh * W, first, W, size, narrow, 1);
                    for (ptrdiff_t oh = from; oh < to; oh++) abn_slice_block(dst + oh * OW, x, base + 2 * oh * W, first, W, size, narrow, 0);
                    for (ptrdiff_t oh = to; oh < hi; oh++) abn_slice_block(dst + oh * OW, x, base + 2 * oh * W, first, W, size, narrow, 1);
                    for (ptrdiff_t oh = hi; oh < OH; oh++) memcpy(dst + oh * OW, &zero, sizeof zero);
                }
            }
        }
    }
}

ABN_DISPATCH(abn_stride2_im2col,
             (float *cols, ptrdiff_t ld, const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH,
              ptrdiff_t padW),
             (cols, ld, x, C, H, W, kH, kW, padH, padW))

/// half[k ..< k + 16] = block k of one half of padded row r, summed in a register over the
/// slices that land in it: tap j of parity `parity` and output row oh (kernel row r - 2 oh) puts column
/// slice value ow at half position j/2 + ow. Each slice is loaded shifted by j/2 and masked to
/// its own lanes, so every add goes to the same register (no store-to-load chains in memory).
ABN_INLINE void abn_half_block(float *restrict half, const float *restrict cols, ptrdiff_t ld, ptrdiff_t c, ptrdiff_t r, ptrdiff_t first,
                                ptrdiff_t last, ptrdiff_t k, int parity, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t OW) {
    abn_f16 sum = {0};
    for (ptrdiff_t oh = first; oh <= last; oh++) {
        const float *rows = cols + (c * kH + r - 2 * oh) * kW * ld + oh * OW;
        for (ptrdiff_t j = parity; j < kW; j += 2) {
            const ptrdiff_t shift = j / 2;
            if (k + 16 <= shift || k >= shift + OW) continue;
            const abn_i16 position = abn_lanes16 + (int)k;
            const abn_i16 mine = (position >= (int)shift) & (position < (int)(shift + OW));
            abn_f16 v;
            memcpy(&v, rows + j * ld + k - shift, sizeof v);
            sum += (abn_f16)((abn_i16)v & mine);
        }
    }
    memcpy(half + k, &sum, sizeof sum);
}

ABN_INLINE void abn_stride2_col2im_body(float *dx, const float *cols, ptrdiff_t ld, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH,
                                        ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW, int accumulate, float *scratch) {
    const ptrdiff_t OH = (H + 2 * padH - kH) / 2 + 1, OW = (W + 2 * padW - kW) / 2 + 1, halves16 = abn_halves16(W, padW);
    float *restrict row = scratch, *restrict even = row + 2 * halves16, *restrict odd = even + halves16 + 16;
    for (ptrdiff_t c = 0; c < C; c++) {
        for (ptrdiff_t h = 0; h < H; h++) {
            const ptrdiff_t r = h + padH;
            ptrdiff_t first, last;
            abn_rows_reading(r, kH, OH, &first, &last);
            for (ptrdiff_t k = 0; k < halves16; k += 16) {
                abn_half_block(even, cols, ld, c, r, first, last, k, 0, kH, kW, OW);
                abn_half_block(odd, cols, ld, c, r, first, last, k, 1, kH, kW, OW);
            }
            abn_join_row(row, even, odd, halves16);
            abn_copy_row(dx + (c * H + h) * W, row + padW, W, accumulate);
        }
    }
}

ABN_DISPATCH(abn_stride2_col2im,
             (float *dx, const float *cols, ptrdiff_t ld, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW,
              ptrdiff_t padH, ptrdiff_t padW, int accumulate, float *scratch),
             (dx, cols, ld, C, H, W, kH, kW, padH, padW, accumulate, scratch))

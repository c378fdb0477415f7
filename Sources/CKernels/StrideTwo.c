// Im2col and col2im of stride-2 convolutions (dilation 1) by split rows. Output column ow of
// kernel tap j reads input column 2 ow + j - padW: a stride-2 gather. Splitting each (zero-
// padded) input row once into its even and odd columns makes every tap's OW values one
// contiguous slice of one half: j even reads even[j/2 + ow], j odd odd[(j-1)/2 + ow]. Rows are
// split and joined with vector shuffles, and slices move 16 values at a time: an im2col copy may
// write up to 15 values past its slice, which the next slice of the same row (or the row's slack
// of 16 columns after the last image) takes; col2im reads up to 15 values around a slice (the
// columns need 16 of slack on both sides).
#include "CKernels.h"
#include "Levels.h"

#include <string.h>

/// Values per half of a padded row of Wp, rounded up to whole vectors.
ABN_INLINE ptrdiff_t abn_halves16(ptrdiff_t W, ptrdiff_t padW) { return ((W + 2 * padW + 1) / 2 + 15) / 16 * 16; }

/// Floats of one padded row's halves (halves16 + 16 each: room for a last copy's over-read).
ABN_INLINE ptrdiff_t abn_halves_pitch(ptrdiff_t W, ptrdiff_t padW) { return 2 * abn_halves16(W, padW) + 32; }

/// Scratch: a channel's padded rows (2 halves16 each, zero past the row) and their halves; the
/// col2im uses one of each.
ptrdiff_t abn_stride2_scratch(ptrdiff_t H, ptrdiff_t W, ptrdiff_t padH, ptrdiff_t padW) {
    return (H + 2 * padH) * (2 * abn_halves16(W, padW) + abn_halves_pitch(W, padW));
}

/// The output rows oh (with kernel row i = r - 2 oh) that read padded row r: oh from
/// *first through *last (empty when *first > *last).
ABN_INLINE void abn_rows_reading(ptrdiff_t r, ptrdiff_t kH, ptrdiff_t OH, ptrdiff_t *first, ptrdiff_t *last) {
    *first = r - kH + 1 > 0 ? (r - kH + 2) / 2 : 0;
    *last = r / 2 < OH - 1 ? r / 2 : OH - 1;
}

/// dst[0 ..< n] = src[0 ..< n], in vectors of 16 (the last may reach 15 values past n on both).
ABN_INLINE void abn_copy_slice(float *restrict dst, const float *restrict src, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k += 16) {
        abn_f16 v;
        memcpy(&v, src + k, sizeof v);
        memcpy(dst + k, &v, sizeof v);
    }
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

/// even[k] = row[2k], odd[k] = row[2k + 1] for k < halves16.
ABN_INLINE void abn_split_row(float *restrict even, float *restrict odd, const float *restrict row, ptrdiff_t halves16) {
    for (ptrdiff_t k = 0; k < halves16; k += 16) {
        abn_f16 a, b;
        memcpy(&a, row + 2 * k, sizeof a);
        memcpy(&b, row + 2 * k + 16, sizeof b);
        const abn_f16 e = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const abn_f16 o = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        memcpy(even + k, &e, sizeof e);
        memcpy(odd + k, &o, sizeof o);
    }
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

ABN_INLINE void abn_stride2_im2col_body(float *cols, ptrdiff_t ld, const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH,
                                        ptrdiff_t kW, ptrdiff_t padH, ptrdiff_t padW, float *scratch) {
    const ptrdiff_t Hp = H + 2 * padH, OH = (Hp - kH) / 2 + 1, OW = (W + 2 * padW - kW) / 2 + 1, halves16 = abn_halves16(W, padW);
    const ptrdiff_t pitch = abn_halves_pitch(W, padW);
    float *restrict padded = scratch, *restrict halves = scratch + Hp * 2 * halves16;
    memset(padded, 0, sizeof(float) * (size_t)(Hp * 2 * halves16));
    for (ptrdiff_t c = 0; c < C; c++) {
        // three passes over the channel: its rows padded, split, and cols written row by row
        for (ptrdiff_t h = 0; h < H; h++) abn_copy_row(padded + (h + padH) * 2 * halves16 + padW, x + (c * H + h) * W, W, 0);
        for (ptrdiff_t r = 0; r < Hp; r++) {
            float *even = halves + r * pitch;
            abn_split_row(even, even + halves16 + 16, padded + r * 2 * halves16, halves16);
        }
        // the next channel's input fetched meanwhile (the next image's after the last channel);
        // each row of cols written front to back
        for (ptrdiff_t k = 0; k < H * W; k += 16) __builtin_prefetch(x + (c + 1) * H * W + k);
        for (ptrdiff_t i = 0; i < kH; i++) {
            for (ptrdiff_t j = 0; j < kW; j++) {
                float *target = cols + ((c * kH + i) * kW + j) * ld;
                const float *source = halves + i * pitch + (j % 2 == 0 ? 0 : halves16 + 16) + j / 2;
                for (ptrdiff_t oh = 0; oh < OH; oh++) abn_copy_slice(target + oh * OW, source + 2 * oh * pitch, OW);
            }
        }
    }
}

ABN_DISPATCH(abn_stride2_im2col,
             (float *cols, ptrdiff_t ld, const float *x, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t kH, ptrdiff_t kW, ptrdiff_t padH,
              ptrdiff_t padW, float *scratch),
             (cols, ld, x, C, H, W, kH, kW, padH, padW, scratch))

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

// Row-shifted lowering of convolutions with more than one kernel row.
//
// im2col copies every input pixel kH*kW times. The kernel rows need no copy: lowering by
// kernel column only gives a matrix E (C*kW, rows*outW) whose rows are input rows, padded,
// gathered at each kernel column's offsets, and kernel row i contributes the GEMM
// W_i (outC, C*kW) x E viewed some rows further on (same leading dimension). For a 3x3 kernel
// at stride 1 that is a third of im2col's copying, at the price of kH GEMMs of depth C*kW
// instead of one of depth C*kH*kW. With a vertical stride sH, output row oh and kernel row i
// read padded input row oh*sH + i*dH: E holds one block per row phase (i*dH) mod sH, its rows
// the padded rows of that phase, and kernel row i reads its phase's block (i*dH) / sH rows on.
//
// Small images are stacked so that the GEMMs are wide enough: image b's rows start at row
// b * rowPeriod of each block; at stride 1 the padH zero rows between two images serve as the
// bottom padding of one and the top padding of the next. The GEMM then also computes
// rowPeriod - outH junk output rows between images, which are skipped.

extension Conv2DGeometry {
    /// Whether the convolution is lowered by row shifts rather than im2col: more than one
    /// kernel row, and GEMMs at least 16 deep (shallower ones, such as the stem's C = 1, run far
    /// from the GEMM peak, where im2col's single deeper GEMM is faster).
    var lowersByRowShift: Bool { kernelHeight > 1 && shiftedPatchSize >= 16 }

    /// Rows of each block of the row-shifted matrix E: C * kW.
    var shiftedPatchSize: Int { inChannels * kernelWidth }

    /// The row phases (i*dH) mod sH of the kernel rows, one block of E each (just 0 at stride 1).
    var rowPhases: [Int] { Array(Set((0..<kernelHeight).map { $0 * dilationHeight % strideHeight })).sorted() }

    /// Where kernel row i reads E: its phase's block (index into `rowPhases`) and the row shift
    /// (i*dH) / sH within it.
    func kernelRowSource(_ i: Int) -> (block: Int, shift: Int) {
        (rowPhases.firstIndex(of: i * dilationHeight % strideHeight)!, i * dilationHeight / strideHeight)
    }

    /// Rows of each block of E for `rows` consecutive output rows: rows + dH*(kH-1) / sH.
    func shiftedRows(outputRows rows: Int) -> Int { rows + dilationHeight * (kernelHeight - 1) / strideHeight }

    /// Rows of each block per stacked image: at stride 1, H + padH (its rows and the zero rows
    /// shared with the next image); otherwise the rows one image needs.
    var rowPeriod: Int { strideHeight == 1 ? inHeight + padHeight : shiftedRows(outputRows: outHeight) }

    /// Whether images can be stacked: each image's output rows fit its row period.
    var stacksImages: Bool { outHeight <= rowPeriod }
}

/// Fills, in e (blocks, C*kW, ld) with one block per row phase, the rows that output rows
/// `rows` of one image (C, H, W) read: shiftedRows(rows.count) rows of outW values per block
/// row, row (c, j) of phase p's block holding input rows rows.lowerBound*sH + p - padH + r*sH
/// (r = 0, 1, ...) of channel c gathered at columns ow*sW + j*dW - padW, zero outside the image.
func lowerRows(_ e: UnsafeMutablePointer<Float>, ld: Int, _ image: UnsafePointer<Float>, rows: Range<Int>, _ g: Conv2DGeometry) {
    let H = g.inHeight, W = g.inWidth, OW = g.outWidth, kW = g.kernelWidth
    let sh = g.strideHeight, sw = g.strideWidth
    let count = g.shiftedRows(outputRows: rows.count)
    for (block, phase) in g.rowPhases.enumerated() {
        let firstInputRow = rows.lowerBound * sh + phase - g.padHeight  // input row of block row 0
        let lo = min(count, firstInputRow >= 0 ? 0 : (-firstInputRow + sh - 1) / sh)  // block rows [lo, hi) lie inside the image
        let hi = max(lo, min(count, H - firstInputRow <= 0 ? 0 : (H - firstInputRow + sh - 1) / sh))
        for c in 0..<g.inChannels {
            let plane = image + c * H * W
            for j in 0..<kW {
                let row = e + (block * g.shiftedPatchSize + c * kW + j) * ld
                let v = g.validOutputColumns(kernelColumn: j)
                let shift = j * g.dilationWidth - g.padWidth  // iw = ow * sW + shift
                if lo > 0 { row.update(repeating: 0, count: lo * OW) }
                if hi < count { (row + hi * OW).update(repeating: 0, count: (count - hi) * OW) }
                guard lo < hi else { continue }
                let src = plane + (firstInputRow + lo * sh) * W + shift
                let dst = row + lo * OW
                if sh == 1 && sw == 1 && OW == W && !v.isEmpty {
                    // Same-size output at stride 1: the rows are one contiguous copy, then the
                    // columns that fall into the padding (copied from the neighbouring row) are zeroed.
                    let first = v.lowerBound, last = (hi - lo - 1) * OW + v.upperBound
                    (dst + first).update(from: src + first, count: last - first)
                    for r in 0..<(hi - lo) {
                        let d = dst + r * OW
                        for ow in 0..<v.lowerBound { d[ow] = 0 }
                        for ow in v.upperBound..<OW { d[ow] = 0 }
                    }
                    continue
                }
                for r in 0..<(hi - lo) {
                    let d = dst + r * OW, s = src + r * sh * W
                    for ow in 0..<v.lowerBound { d[ow] = 0 }
                    switch sw {
                    case 1: for ow in v { d[ow] = s[ow] }
                    case 2: gatherEven(d + v.lowerBound, s + 2 * v.lowerBound, count: v.count)
                    default: for ow in v { d[ow] = s[ow * sw] }
                    }
                    for ow in v.upperBound..<OW { d[ow] = 0 }
                }
            }
        }
    }
}

/// kernelRows (kH, outC, C*kW)[i, o, c*kW + j] = weight (outC, C, kH, kW)[o, c, i, j].
func splitKernelRows(_ kernelRows: UnsafeMutablePointer<Float>, _ weight: UnsafePointer<Float>, _ g: Conv2DGeometry) {
    let OC = g.outChannels, C = g.inChannels, kH = g.kernelHeight, kW = g.kernelWidth
    for o in 0..<OC {
        for c in 0..<C {
            for i in 0..<kH {
                for j in 0..<kW {
                    kernelRows[(i * OC + o) * C * kW + c * kW + j] = weight[((o * C + c) * kH + i) * kW + j]
                }
            }
        }
    }
}

/// dW (outC, C, kH, kW) = (accumulate ? dW : 0) + the sum, in order, of `partials`, each laid
/// out like `splitKernelRows`'s result (kH, outC, C*kW).
func joinKernelRows(_ dW: UnsafeMutablePointer<Float>, _ partials: ArraySlice<UnsafeMutablePointer<Float>>,
                    accumulate: Bool, _ g: Conv2DGeometry) {
    let OC = g.outChannels, C = g.inChannels, kH = g.kernelHeight, kW = g.kernelWidth
    forBlocks(OC * C) { block in
        for oc in block {
            let o = oc / C, c = oc % C
            for i in 0..<kH {
                for j in 0..<kW {
                    let target = (oc * kH + i) * kW + j
                    let source = (i * OC + o) * C * kW + c * kW + j
                    var s: Float = accumulate ? dW[target] : 0
                    for p in partials { s += p[source] }
                    dW[target] = s
                }
            }
        }
    }
}

// Row-shifted lowering of stride-1 convolutions.
//
// im2col copies every input pixel kH*kW times. With stride 1 the kernel rows need no copy:
// lowering by kernel column only gives a matrix E (C*kW, rows*outW) whose rows are the
// padded input rows shifted by each kernel column, and kernel row i contributes the GEMM
// W_i (outC, C*kW) x E viewed i*dH rows further on (same leading dimension). For a 3x3 kernel
// that is a third of im2col's copying, at the price of kH GEMMs of depth C*kW instead of one
// of depth C*kH*kW.
//
// Small images are stacked so that the GEMMs are wide enough: image b's padded rows start at
// row b * rowPeriod of E, the padH zero rows between two images serving as the bottom padding
// of one and the top padding of the next. The GEMM then also computes rowPeriod - outH junk
// output rows between images, which are skipped.

extension Conv2DGeometry {
    /// Whether the convolution is lowered by row shifts rather than im2col: stride 1, more than
    /// one kernel row, and GEMMs at least 16 deep (shallower ones, such as the stem's C = 1,
    /// run far from the GEMM peak, where im2col's single deeper GEMM is faster).
    var lowersByRowShift: Bool {
        strideHeight == 1 && strideWidth == 1 && kernelHeight > 1 && shiftedPatchSize >= 16
    }

    /// Rows of the row-shifted matrix E: C * kW.
    var shiftedPatchSize: Int { inChannels * kernelWidth }

    /// Input rows (padding included) that `rows` consecutive output rows read: rows + dH*(kH-1).
    func paddedRows(outputRows rows: Int) -> Int { rows + dilationHeight * (kernelHeight - 1) }

    /// Rows of E per stacked image: H + padH (its rows and the zero rows shared with the next).
    var rowPeriod: Int { inHeight + padHeight }

    /// Whether images can be stacked: each image's output rows fit its row period.
    var stacksImages: Bool { outHeight <= rowPeriod }
}

/// Fills, in e (C*kW, ld), the padded rows of output rows `rows` of one image (C, H, W):
/// paddedRows(rows.count) rows of outW values each, so that row (c, j) of e holds, for each
/// padded row r, input row rows.lowerBound + r - padH of channel c shifted by column
/// j*dW - padW, zero outside the image.
func lowerRows(_ e: UnsafeMutablePointer<Float>, ld: Int, _ image: UnsafePointer<Float>, rows: Range<Int>, _ g: Conv2DGeometry) {
    let H = g.inHeight, W = g.inWidth, OW = g.outWidth, kW = g.kernelWidth
    let padded = g.paddedRows(outputRows: rows.count)
    let firstInputRow = rows.lowerBound - g.padHeight  // input row of padded row 0
    let lo = min(padded, max(0, -firstInputRow))  // padded rows [lo, hi) lie inside the image
    let hi = max(lo, min(padded, H - firstInputRow))
    for c in 0..<g.inChannels {
        let plane = image + c * H * W
        for j in 0..<kW {
            let row = e + (c * kW + j) * ld
            let v = g.validOutputColumns(kernelColumn: j)
            let shift = j * g.dilationWidth - g.padWidth  // iw = ow + shift
            if lo > 0 { row.update(repeating: 0, count: lo * OW) }
            if hi < padded { (row + hi * OW).update(repeating: 0, count: (padded - hi) * OW) }
            guard lo < hi else { continue }
            let src = plane + (firstInputRow + lo) * W + shift
            let dst = row + lo * OW
            if OW == W && !v.isEmpty {
                copyContiguousRows(dst, src, rows: hi - lo, width: OW, valid: v)
                continue
            }
            for r in 0..<(hi - lo) {
                let d = dst + r * OW, s = src + r * W
                for ow in 0..<v.lowerBound { d[ow] = 0 }
                for ow in v { d[ow] = s[ow] }
                for ow in v.upperBound..<OW { d[ow] = 0 }
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

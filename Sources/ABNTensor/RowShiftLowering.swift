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

/// Lowers work item (images firstImage..<firstImage+images, output rows `rows`) into e
/// (C*kW, ld): returns e and ld, image b's rows starting at column b * rowPeriod * outW.
func lowerItem(_ e: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, firstImage n0: Int, images nb: Int,
               rows: Range<Int>, _ g: Conv2DGeometry) -> (UnsafeMutablePointer<Float>, ld: Int) {
    let ld = ((nb - 1) * g.rowPeriod + g.paddedRows(outputRows: rows.count)) * g.outWidth
    for b in 0..<nb {
        lowerRows(e + b * g.rowPeriod * g.outWidth, ld: ld, x + (n0 + b) * g.inChannels * g.inPixels, rows: rows, g)
    }
    return (e, ld)
}

/// Row-shifted lowering for stride 1: kH GEMMs of depth C*kW per item. The input gradient,
/// where it is not a transposed convolution (fewer than 8 input channels, or a padding beyond
/// the kernel's extent), is col2im's.
enum RowShiftLowering: ConvolutionLowering {
    static let name = "row-shift"
    static let inputGradientFallback: (any ConvolutionLowering.Type)? = Im2colLowering.self

    /// Stride 1, more than one kernel row, and GEMMs at least 16 deep (shallower ones, such as
    /// the stem's C = 1, run far from the GEMM peak, where im2col's single deeper GEMM is faster).
    static func applies(to g: Conv2DGeometry) -> Bool {
        g.strideHeight == 1 && g.strideWidth == 1 && g.kernelHeight > 1 && g.shiftedPatchSize >= 16
    }

    /// Small images are stacked until a GEMM has at least this many columns.
    static let minimumColumns = 256

    /// One image per item, or as many stacked images as make `minimumColumns` and fit the
    /// budget; an image too large for it is cut into blocks of output rows.
    static func plan(for direction: ConvolutionDirection, of g: Conv2DGeometry, budget: Int) -> ConvolutionPlan {
        let perOutputRow = g.shiftedPatchSize * g.outWidth
        let perImage = perOutputRow * g.paddedRows(outputRows: g.outHeight)
        let images: Int, rows: Int
        if perImage <= budget {
            rows = g.outHeight
            let wanted = g.stacksImages ? (minimumColumns + g.outPixels - 1) / g.outPixels : 1
            let fitting = g.stacksImages ? 1 + (budget - perImage) / (perOutputRow * g.rowPeriod) : 1
            images = max(1, min(g.batch, wanted, fitting))
        } else {
            images = 1
            rows = max(1, min(g.outHeight, budget / perOutputRow - g.dilationHeight * (g.kernelHeight - 1)))
        }
        let stackedRows = (images - 1) * g.rowPeriod
        return ConvolutionPlan(self, g, images: images, rows: rows, maxColumns: (stackedRows + rows) * g.outWidth,
                               loweredCount: perOutputRow * (stackedRows + g.paddedRows(outputRows: rows)))
    }

    /// Per item: kH GEMMs, kernel row i times the row-shifted matrix i*dH rows on, straight into
    /// the output for a single image, else through a staging buffer.
    static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                        _ bias: UnsafePointer<Float>?, accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .forward, of: g, budget: workspace.columnBudget)
        let KS = g.shiftedPatchSize, P = g.outPixels, OC = g.outChannels, OW = g.outWidth
        let workers = Parallel.workers(for: plan.items)
        let lowered = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)
        let staging = workspace.buffers(.loweredOutput, workers: workers, count: plan.images > 1 ? OC * plan.maxColumns : 0)
        let kernelRows = workspace.buffers(.loweredWeight, workers: 1, count: g.weightShape.reduce(1, *))[0]
        splitKernelRows(kernelRows, w, g)
        Parallel.forEachClaimed(plan.items, workers: workers) { worker, index in
            let (n0, nb, rows) = plan.item(index, g)
            let (e, ld) = lowerItem(lowered[worker], x, firstImage: n0, images: nb, rows: rows, g)
            let columns = ((nb - 1) * g.rowPeriod + rows.count) * OW
            let direct = nb == 1
            let out = direct ? y + n0 * OC * P + rows.lowerBound * OW : staging[worker]
            for i in 0..<g.kernelHeight {
                BLAS.sgemm(m: OC, n: columns, k: KS, a: kernelRows + i * OC * KS, lda: KS,
                           b: e + i * g.dilationHeight * OW, ldb: ld,
                           beta: i > 0 || (direct && accumulate) ? 1 : 0, c: out, ldc: direct ? P : columns)
            }
            if !direct {
                scatterChunk(y + n0 * OC * P, out, ld: columns, bias: bias, accumulate: accumulate, imageStride: g.rowPeriod * OW,
                             images: nb, channels: OC, pixels: P)
            } else if let bias {
                for o in 0..<OC { let v = bias[o]; for p in 0..<columns { out[o * P + p] += v } }
            }
        }
    }

    /// dW in kernel-row blocks (kH, outC, C*kW) = sum over items of D (kH*outC, ld) x E^T, one GEMM
    /// per item: row (i, o) of D holds dY of channel o shifted i*dH rows on (zeros elsewhere), so
    /// block i is dY times E viewed i*dH rows on.
    static func weightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                               accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .weightGradient, of: g, budget: workspace.columnBudget)
        let KS = g.shiftedPatchSize, P = g.outPixels, OC = g.outChannels, OW = g.outWidth, kH = g.kernelHeight
        let workers = Parallel.workers(for: plan.items)
        let lowered = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)
        let shifted = workspace.buffers(.loweredOutput, workers: workers, count: kH * OC * plan.loweredCount / KS)  // D
        let partials = workspace.buffers(.weightGradientPartials, workers: plan.groups, count: g.weightShape.reduce(1, *))
        Parallel.forEachClaimed(plan.groups, workers: workers) { worker, group in
            let items = plan.items(ofGroup: group)
            for index in items {
                let (n0, nb, rows) = plan.item(index, g)
                let (e, ld) = lowerItem(lowered[worker], x, firstImage: n0, images: nb, rows: rows, g)
                let d = shifted[worker], count = rows.count * OW
                for i in 0..<kH {
                    for o in 0..<OC {
                        let row = d + (i * OC + o) * ld
                        var filled = 0
                        for b in 0..<nb {
                            let start = b * g.rowPeriod * OW + i * g.dilationHeight * OW
                            (row + filled).update(repeating: 0, count: start - filled)
                            (row + start).update(from: dy + ((n0 + b) * OC + o) * P + rows.lowerBound * OW, count: count)
                            filled = start + count
                        }
                        (row + filled).update(repeating: 0, count: ld - filled)
                    }
                }
                BLAS.sgemm(transB: true, m: kH * OC, n: KS, k: ld, a: d, lda: ld, b: e, ldb: ld,
                           beta: index == items.lowerBound ? 0 : 1, c: partials[group], ldc: KS)
            }
        }
        joinKernelRows(dW, partials.prefix(plan.groups), accumulate: accumulate, g)
    }
}

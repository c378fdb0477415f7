// Stride-1 convolutions as one GEMM of depth C per kernel tap, over only the output pixels
// whose input pixel lies inside the image.
//
// Tap (i, j) reads input pixel (oh + t_i, ow + s_j) for output pixel (oh, ow), with
// t_i = i*dH - padH and s_j = j*dW - padW; it contributes to the output rows R_i and columns V_j
// where that pixel is inside the image. Copying, for kernel column j, the input's columns
// V_j + s_j of every row gives X_j (C, H, |V_j|), in which rows R_i + t_i are one contiguous
// block per channel, so tap (i, j) is the GEMM
//
//     Y_j[:, R_i] (outC, |R_i| |V_j|) += W_ij (outC, C) x X_j[:, R_i + t_i] (C, |R_i| |V_j|)
//
// and y is the sum over j of Y_j at columns V_j. No product touches padding, and a kernel
// column whose window is the whole row (a 1x1 kernel; the centre column of a dilated 3x3 with
// padding d) needs no copy at all: X_j is x itself and Y_j is y. Hence its uses: 1x1
// convolutions with stride 1 (a plain GEMM per block of an image's pixels), and dilated kernels
// on maps not much larger than the dilation, where im2col's or row shifts' products are mostly
// with padding (the ASPP's dilations 12 to 36 on 64x64 maps).
//
// The weight gradient is dW_ij = sum over images of dY_j[:, R_i] X_j[:, R_i + t_i]^T, dY_j the
// output gradient's columns V_j; its items are blocks of dW_ij (tap, output-channel block,
// input-channel block), each summing the images in order, so no partial sums are needed. A 1x1
// kernel without padding instead gives each item a block of an image's pixels and the whole
// dW, summed in fixed groups like im2col's: whole (outC, C) products run faster than blocks.

extension Conv2DGeometry {
    /// For kernel row `i`: the output rows whose input row lies inside the image (empty when
    /// none does).
    func validOutputRows(kernelRow i: Int) -> Range<Int> {
        let offset = i * dilationHeight - padHeight  // ih = oh * stride + offset
        let lo = min(outHeight, offset >= 0 ? 0 : (-offset + strideHeight - 1) / strideHeight)
        let hi = inHeight - 1 - offset < 0 ? 0 : min(outHeight, (inHeight - 1 - offset) / strideHeight + 1)
        return lo..<max(lo, hi)
    }

    /// Whether kernel column `j`'s input window is the whole of each input row (no copy needed).
    func readsWholeRows(kernelColumn j: Int) -> Bool {
        outWidth == inWidth && j * dilationWidth == padWidth
    }

    /// Whether kernel column `j` contributes to every output column (its products go straight
    /// into the output).
    func writesWholeRows(kernelColumn j: Int) -> Bool {
        validOutputColumns(kernelColumn: j).count == outWidth
    }

    /// Input elements per image of the copied kernel-column windows X_j (the columns that do
    /// not read whole rows).
    var tapWindowCount: Int {
        (0..<kernelWidth).reduce(0) { $0 + (readsWholeRows(kernelColumn: $1) ? 0 : inChannels * inHeight * validOutputColumns(kernelColumn: $1).count) }
    }

    /// Where each kernel column's window X_j starts in `copyTapWindows`'s buffer; nil for the
    /// columns that read whole rows (X_j is the image).
    var tapWindowOffsets: [Int?] {
        var start = 0
        return (0..<kernelWidth).map { j in
            guard !readsWholeRows(kernelColumn: j) else { return nil }
            defer { start += inChannels * inHeight * validOutputColumns(kernelColumn: j).count }
            return start
        }
    }

    /// The fraction of im2col's multiply-adds that touch the image rather than padding.
    var tapsInsideImage: Double {
        let rows = (0..<kernelHeight).reduce(0) { $0 + validOutputRows(kernelRow: $1).count }
        let columns = (0..<kernelWidth).reduce(0) { $0 + validOutputColumns(kernelColumn: $1).count }
        return Double(rows * columns) / Double(kernelHeight * kernelWidth * outPixels)
    }
}

/// windows: for each kernel column j of `g` that does not read whole rows, at
/// `g.tapWindowOffsets[j]`, X_j (C, H, |V_j|) of the image at `image` (C, H, W):
/// X_j[c, h, q] = image[c, h, V_j.lowerBound + q + s_j].
func copyTapWindows(_ windows: UnsafeMutablePointer<Float>, _ image: UnsafePointer<Float>, _ g: Conv2DGeometry) {
    for (j, offset) in g.tapWindowOffsets.enumerated() {
        guard let offset else { continue }
        let v = g.validOutputColumns(kernelColumn: j)
        copyColumns(windows + offset, image + j * g.dilationWidth - g.padWidth, channels: g.inChannels, rows: g.inHeight,
                    width: g.inWidth, columns: v)
    }
}

/// dst (channels, rows, |v|) = the columns `v` of src (channels, rows, width).
func copyColumns(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, channels: Int, rows: Int, width: Int, columns v: Range<Int>) {
    Parallel.forRanges(channels * rows, minimumPerThread: 256) { range in
        for r in range { (dst + r * v.count).update(from: src + r * width + v.lowerBound, count: v.count) }
    }
}

/// taps (kH*kW, outC, C)[i*kW + j, o, c] = weight (outC, C, kH, kW)[o, c, i, j].
func splitKernelTaps(_ taps: UnsafeMutablePointer<Float>, _ weight: UnsafePointer<Float>, _ g: Conv2DGeometry) {
    let OC = g.outChannels, C = g.inChannels, T = g.kernelHeight * g.kernelWidth
    forBlocks(OC * C) { r in
        for oc in r {
            for t in 0..<T { taps[t * OC * C + oc] = weight[oc * T + t] }
        }
    }
}

/// One GEMM per kernel tap over the output pixels it reaches (see above); stride 1 only.
enum TapLowering: ConvolutionLowering {
    static let name = "taps"
    static let inputGradientFallback: (any ConvolutionLowering.Type)? = Im2colLowering.self

    static func applies(to g: Conv2DGeometry) -> Bool { g.strideHeight == 1 && g.strideWidth == 1 }

    /// Output pixels of an image from which a 1x1 convolution takes this lowering: at least
    /// this many GEMM columns per image (smaller images go by im2col, which stacks images).
    static let minimumPixels = 1024

    /// Fraction of im2col's multiply-adds inside the image below which a multi-tap kernel takes
    /// this lowering (with 64+ input channels, so that depth-C GEMMs run near the peak).
    static let insideFraction = 0.8

    /// A 1x1 kernel on images of `minimumPixels` or more; a larger kernel, with 64 or more
    /// input channels, when fewer than `insideFraction` of its products would touch the image.
    static func isPreferred(for direction: ConvolutionDirection, of g: Conv2DGeometry) -> Bool {
        if g.kernelHeight * g.kernelWidth == 1 { return g.outPixels >= minimumPixels }
        return g.inChannels >= 64 && g.tapsInsideImage < insideFraction
    }

    /// GEMM columns of a full-width tap per item: blocks of output rows this wide.
    static let columnsPerItem = 1024

    /// Items are blocks of output rows of one image, about `columnsPerItem` output pixels each.
    static func plan(for direction: ConvolutionDirection, of g: Conv2DGeometry, budget: Int) -> ConvolutionPlan {
        let rows = max(1, min(g.outHeight, (columnsPerItem + g.outWidth - 1) / g.outWidth))
        let staged = (0..<g.kernelWidth).map { g.writesWholeRows(kernelColumn: $0) ? 0 : g.validOutputColumns(kernelColumn: $0).count }.max() ?? 0
        return ConvolutionPlan(self, g, images: 1, rows: rows, maxColumns: rows * staged, loweredCount: g.tapWindowCount)
    }

    /// The kernel as (kH*kW, outC, C) GEMM operands: the weight itself for a 1x1 kernel.
    private static func kernelTaps(_ w: UnsafePointer<Float>, _ workspace: Workspace, _ g: Conv2DGeometry) -> UnsafePointer<Float> {
        guard g.kernelHeight * g.kernelWidth > 1 else { return w }
        let taps = workspace.buffers(.loweredWeight, workers: 1, count: g.weightShape.reduce(1, *))[0]
        splitKernelTaps(taps, w, g)
        return UnsafePointer(taps)
    }

    /// Per image: the kernel-column windows copied, then per block of output rows, the taps of
    /// the columns that write whole rows straight into y and each other column's taps into a
    /// staging block added into y at its columns.
    static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                        _ bias: UnsafePointer<Float>?, accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .forward, of: g, budget: workspace.columnBudget)
        let C = g.inChannels, OC = g.outChannels, H = g.inHeight, W = g.inWidth, OH = g.outHeight, OW = g.outWidth
        let workers = Parallel.workers(for: plan.items)
        let windows = workspace.buffers(.loweredInput, workers: 1, count: plan.loweredCount)[0]
        let staging = workspace.buffers(.loweredOutput, workers: workers, count: OC * plan.maxColumns)
        let taps = kernelTaps(w, workspace, g)
        let columns = (0..<g.kernelWidth).map { g.validOutputColumns(kernelColumn: $0) }
        let direct = (0..<g.kernelWidth).filter { g.writesWholeRows(kernelColumn: $0) && !columns[$0].isEmpty }
        let staged = (0..<g.kernelWidth).filter { !g.writesWholeRows(kernelColumn: $0) && !columns[$0].isEmpty }
        let windowOffsets = g.tapWindowOffsets
        let copies = plan.loweredCount > 0
        let phases = copies ? (0..<g.batch).map { $0..<$0 + 1 } : [0..<g.batch]
        for images in phases {
            if copies { copyTapWindows(windows, x + images.lowerBound * C * H * W, g) }
            Parallel.forEachClaimed(images.count * plan.blocksPerImage, workers: workers) { worker, index in
                let n = images.lowerBound + index / plan.blocksPerImage
                let block = index % plan.blocksPerImage * plan.rows..<min(OH, (index % plan.blocksPerImage + 1) * plan.rows)
                let image = x + n * C * H * W, out = y + n * OC * OH * OW
                // Taps of kernel column j over `block` into target (OC, block rows, width) at `ldc`:
                // the first covering the whole block overwrites (unless `add`), else target is zeroed first.
                func columnTaps(_ j: Int, into target: UnsafeMutablePointer<Float>, ldc: Int, add: Bool) {
                    let width = columns[j].count  // also the row pitch of the source: W when it is the image
                    let source = windowOffsets[j].map { UnsafePointer(windows) + $0 } ?? image
                    let rowRanges = (0..<g.kernelHeight).map { g.validOutputRows(kernelRow: $0).clamped(to: block) }
                    let full = rowRanges.firstIndex { $0 == block }
                    if full == nil && !add {
                        for o in 0..<OC { (target + o * ldc).update(repeating: 0, count: block.count * width) }
                    }
                    for i in (full.map { [$0] } ?? []) + (0..<g.kernelHeight).filter({ $0 != full }) where !rowRanges[i].isEmpty {
                        let rows = rowRanges[i], inputRow = rows.lowerBound + i * g.dilationHeight - g.padHeight
                        BLAS.sgemm(m: OC, n: rows.count * width, k: C, a: taps + (i * g.kernelWidth + j) * OC * C, lda: C,
                                   b: source + inputRow * width, ldb: H * width,
                                   beta: i == full && !add ? 0 : 1, c: target + (rows.lowerBound - block.lowerBound) * width, ldc: ldc)
                    }
                }
                let outBlock = out + block.lowerBound * OW
                for (k, j) in direct.enumerated() {
                    columnTaps(j, into: outBlock, ldc: OH * OW, add: accumulate || k > 0)
                }
                if direct.isEmpty && !accumulate {
                    for o in 0..<OC { (outBlock + o * OH * OW).update(repeating: 0, count: block.count * OW) }
                }
                for j in staged {
                    let s = staging[worker], v = columns[j]
                    columnTaps(j, into: s, ldc: block.count * v.count, add: false)
                    for o in 0..<OC {
                        for r in 0..<block.count {
                            let src = s + (o * block.count + r) * v.count, dst = outBlock + o * OH * OW + r * OW + v.lowerBound
                            for q in 0..<v.count { dst[q] += src[q] }
                        }
                    }
                }
                if let bias {
                    for o in 0..<OC {
                        let b = bias[o], row = outBlock + o * OH * OW
                        for p in 0..<block.count * OW { row[p] += b }
                    }
                }
            }
        }
    }

    /// Blocks of dW_ij an item computes: output channels split into `outBlocks`, input channels
    /// into `inBlocks`, at least 64 channels each, until the taps' blocks make 32 items.
    static func weightGradientBlocks(_ g: Conv2DGeometry) -> (outBlocks: Int, inBlocks: Int) {
        var outBlocks = 1, inBlocks = 1
        let taps = g.kernelHeight * g.kernelWidth
        while taps * outBlocks * inBlocks < 32 {
            if g.inChannels / (2 * inBlocks) >= 64 && g.inChannels / inBlocks >= g.outChannels / outBlocks {
                inBlocks *= 2
            } else if g.outChannels / (2 * outBlocks) >= 64 {
                outBlocks *= 2
            } else if g.inChannels / (2 * inBlocks) >= 64 {
                inBlocks *= 2
            } else {
                break
            }
        }
        return (outBlocks, inBlocks)
    }

    /// dW_ij (outC, C) = sum over images, in order, of dY_j[:, R_i] X_j[:, R_i + t_i]^T; per image
    /// the windows are copied first when a kernel column needs them.
    static func weightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                               accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let C = g.inChannels, OC = g.outChannels, H = g.inHeight, W = g.inWidth, OH = g.outHeight, OW = g.outWidth
        let kH = g.kernelHeight, kW = g.kernelWidth, T = kH * kW
        let weightCount = OC * C * T
        guard g.batch > 0 else {
            if !accumulate { dW.update(repeating: 0, count: weightCount) }
            return
        }
        if T == 1 && g.padHeight == 0 && g.padWidth == 0 {
            pointwiseWeightGradient(dW, dy, x, accumulate: accumulate, workspace, g)
            return
        }
        let columns = (0..<kW).map { g.validOutputColumns(kernelColumn: $0) }
        // per image: X_j (windows of x) and dY_j (the columns V_j of dy, where not all of them)
        let windowOffsets = g.tapWindowOffsets
        var gradientCount = 0
        let gradientOffsets: [Int?] = columns.indices.map { j in
            guard !g.writesWholeRows(kernelColumn: j) else { return nil }
            defer { gradientCount += OC * OH * columns[j].count }
            return gradientCount
        }
        let windows = workspace.buffers(.loweredInput, workers: 1, count: g.tapWindowCount)[0]
        let gradientWindows = workspace.buffers(.loweredOutput, workers: 1, count: gradientCount)[0]
        let tapGradient = workspace.buffers(.weightGradientPartials, workers: 1, count: weightCount)[0]  // (kH*kW, outC, C)
        let (outBlocks, inBlocks) = weightGradientBlocks(g)
        let items = T * outBlocks * inBlocks
        let copies = g.tapWindowCount + gradientCount > 0
        let phases = copies ? (0..<g.batch).map { $0..<$0 + 1 } : [0..<g.batch]
        for images in phases {
            if copies {
                copyTapWindows(windows, x + images.lowerBound * C * H * W, g)
                for j in 0..<kW {
                    if let offset = gradientOffsets[j] {
                        copyColumns(gradientWindows + offset, dy + images.lowerBound * OC * OH * OW, channels: OC, rows: OH, width: OW, columns: columns[j])
                    }
                }
            }
            Parallel.forEachClaimed(items) { _, index in
                let t = index / (outBlocks * inBlocks), i = t / kW, j = t % kW
                let ob = index / inBlocks % outBlocks, cb = index % inBlocks
                let o0 = OC * ob / outBlocks, o1 = OC * (ob + 1) / outBlocks, c0 = C * cb / inBlocks, c1 = C * (cb + 1) / inBlocks
                let target = tapGradient + t * OC * C + o0 * C + c0
                let rows = g.validOutputRows(kernelRow: i), v = columns[j]
                let overwrite = images.lowerBound == 0
                guard !rows.isEmpty && !v.isEmpty else {
                    if overwrite { for o in o0..<o1 { (target + (o - o0) * C).update(repeating: 0, count: c1 - c0) } }
                    return
                }
                // the row pitch of both sources (W or OW where they are the image or dy)
                let width = v.count, inputRow = rows.lowerBound + i * g.dilationHeight - g.padHeight
                for n in images {
                    let image = windowOffsets[j].map { UnsafePointer(windows) + $0 } ?? x + n * C * H * W
                    let gradient = gradientOffsets[j].map { UnsafePointer(gradientWindows) + $0 } ?? dy + n * OC * OH * OW
                    BLAS.sgemm(transB: true, m: o1 - o0, n: c1 - c0, k: rows.count * width,
                               a: gradient + o0 * OH * width + rows.lowerBound * width, lda: OH * width,
                               b: image + c0 * H * width + inputRow * width, ldb: H * width,
                               beta: overwrite && n == images.lowerBound ? 0 : 1, c: target, ldc: C)
                }
            }
        }
        joinKernelTaps(dW, tapGradient, accumulate: accumulate, g)
    }

    /// dW (outC, C) of a 1x1 kernel without padding: per item (a block of an image's pixels) one
    /// GEMM dY_item (outC, pixels) x_item^T, whole, summed in the plan's groups of items into
    /// partials added in order.
    private static func pointwiseWeightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                                accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .weightGradient, of: g, budget: workspace.columnBudget)
        let P = g.outPixels, OC = g.outChannels, C = g.inChannels, OW = g.outWidth
        let partials = workspace.buffers(.weightGradientPartials, workers: plan.groups, count: OC * C)
        Parallel.forEachClaimed(plan.groups) { _, group in
            let items = plan.items(ofGroup: group)
            for index in items {
                let (n, _, rows) = plan.item(index, g)
                BLAS.sgemm(transB: true, m: OC, n: C, k: rows.count * OW, a: dy + n * OC * P + rows.lowerBound * OW, lda: P,
                           b: x + n * C * P + rows.lowerBound * OW, ldb: P, beta: index == items.lowerBound ? 0 : 1, c: partials[group], ldc: C)
            }
        }
        sumPartials(dW, partials.prefix(plan.groups), accumulate: accumulate, count: OC * C)
    }
}

/// dW (outC, C, kH, kW) = (accumulate ? dW : 0) + taps laid out like `splitKernelTaps`'s result.
func joinKernelTaps(_ dW: UnsafeMutablePointer<Float>, _ taps: UnsafePointer<Float>, accumulate: Bool, _ g: Conv2DGeometry) {
    let OC = g.outChannels, C = g.inChannels, T = g.kernelHeight * g.kernelWidth
    forBlocks(OC * C) { r in
        for oc in r {
            for t in 0..<T { dW[oc * T + t] = (accumulate ? dW[oc * T + t] : 0) + taps[t * OC * C + oc] }
        }
    }
}

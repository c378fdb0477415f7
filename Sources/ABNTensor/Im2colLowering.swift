// im2col and col2im (serial: each worker lowers its own item), and the convolutions that run
// by them: 1x1 projections, dilated strided kernels, and whatever no other lowering applies to.

/// cols: (C*kH*kW, ldCols). Fills columns [0, images*rows.count*outW) with the patches of
/// output rows `rows` of `images` images at `input` (image-major, then row, then column).
func im2col(_ cols: UnsafeMutablePointer<Float>, ld ldCols: Int,
            _ input: UnsafePointer<Float>, images: Int, rows: Range<Int>, _ g: Conv2DGeometry) {
    let kH = g.kernelHeight, kW = g.kernelWidth, H = g.inHeight, W = g.inWidth
    let OW = g.outWidth, C = g.inChannels
    let sh = g.strideHeight, sw = g.strideWidth
    let perImage = rows.count * OW
    // With stride 1 and outW == W, consecutive output rows read consecutive input rows at the
    // same column shift.
    let contiguousRows = sh == 1 && sw == 1 && OW == W
    for j in 0..<kW {
        let v = g.validOutputColumns(kernelColumn: j)
        let colOffset = j * g.dilationWidth - g.padWidth
        for b in 0..<images {
            for c in 0..<C {
                let plane = input + (b * C + c) * H * W
                for i in 0..<kH {
                    let row = cols + ((c * kH + i) * kW + j) * ldCols + b * perImage
                    let rowOffset = i * g.dilationHeight - g.padHeight
                    // output rows whose input row is inside the image
                    let lo = max(rows.lowerBound, min(rows.upperBound, (-rowOffset + sh - 1) / sh))
                    let hi = max(lo, min(rows.upperBound, (H - 1 - rowOffset) / sh + 1))
                    if lo > rows.lowerBound { (row).update(repeating: 0, count: (lo - rows.lowerBound) * OW) }
                    if hi < rows.upperBound { (row + (hi - rows.lowerBound) * OW).update(repeating: 0, count: (rows.upperBound - hi) * OW) }
                    guard lo < hi else { continue }
                    if contiguousRows && !v.isEmpty {
                        copyContiguousRows(row + (lo - rows.lowerBound) * OW, plane + (lo + rowOffset) * W + colOffset,
                                           rows: hi - lo, width: OW, valid: v)
                        continue
                    }
                    for oh in lo..<hi {
                        let dst = row + (oh - rows.lowerBound) * OW
                        let src = plane + (oh * sh + rowOffset) * W + colOffset
                        for ow in 0..<v.lowerBound { dst[ow] = 0 }
                        switch sw {  // constant strides let the compiler vectorize the gather
                        case 1: for ow in v { dst[ow] = src[ow] }
                        case 2: gatherEven(dst + v.lowerBound, src + 2 * v.lowerBound, count: v.count)
                        default: for ow in v { dst[ow] = src[ow * sw] }
                        }
                        for ow in v.upperBound..<OW { dst[ow] = 0 }
                    }
                }
            }
        }
    }
}

/// Overwrites (or, with `accumulate`, adds to) the `images` input-gradient images at `dInput`
/// the sum of `dCols` (C*kH*kW, ldCols), all output rows, over the patches each pixel belongs to.
func col2im(_ dInput: UnsafeMutablePointer<Float>, _ dCols: UnsafePointer<Float>, ld ldCols: Int,
            accumulate: Bool, images: Int, _ g: Conv2DGeometry) {
    let kH = g.kernelHeight, kW = g.kernelWidth, H = g.inHeight, W = g.inWidth
    let OH = g.outHeight, OW = g.outWidth, P = g.outPixels, C = g.inChannels
    let sh = g.strideHeight, sw = g.strideWidth
    if !accumulate { dInput.update(repeating: 0, count: images * C * H * W) }
    for j in 0..<kW {
        let v = g.validOutputColumns(kernelColumn: j)
        let colOffset = j * g.dilationWidth - g.padWidth
        for b in 0..<images {
            for c in 0..<C {
                let plane = dInput + (b * C + c) * H * W
                for i in 0..<kH {
                    let row = dCols + ((c * kH + i) * kW + j) * ldCols + b * P
                    let rowOffset = i * g.dilationHeight - g.padHeight
                    for oh in 0..<OH {
                        let ih = oh * sh + rowOffset
                        if ih < 0 || ih >= H { continue }
                        let src = row + oh * OW
                        let dst = plane + ih * W + colOffset
                        switch sw {
                        case 1: for ow in v { dst[ow] += src[ow] }
                        case 2: scatterAddEven(dst + 2 * v.lowerBound, src + v.lowerBound, count: v.count)
                        default: for ow in v { dst[ow * sw] += src[ow] }
                        }
                    }
                }
            }
        }
    }
}

/// im2col: one GEMM of depth C*kH*kW per work item, for every geometry (the last resort of
/// `ConvolutionPlan.lowerings`). The input gradient is col2im.
enum Im2colLowering: ConvolutionLowering {
    static let name = "im2col"
    static let inputGradientName = "col2im"

    static func applies(to g: Conv2DGeometry) -> Bool { true }

    /// Chunks of whole images whose columns fit the budget; an image too large for it is cut
    /// into blocks of output rows, except for the input gradient (col2im adds whole images).
    static func plan(for direction: ConvolutionDirection, of g: Conv2DGeometry, budget: Int) -> ConvolutionPlan {
        let perImage = g.patchSize * g.outPixels
        let images: Int, rows: Int
        if perImage <= budget || direction == .inputGradient {
            images = max(1, min(g.batch, budget / max(1, perImage)))
            rows = g.outHeight
        } else {
            images = 1
            rows = max(1, min(g.outHeight, budget / (g.patchSize * g.outWidth)))
        }
        return ConvolutionPlan(self, g, images: images, rows: rows, maxColumns: images * rows * g.outWidth,
                               loweredCount: g.patchSize * images * rows * g.outWidth)
    }

    /// Per item: im2col columns times the weight in one GEMM (through a staging buffer when the
    /// item holds several images).
    static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                        _ bias: UnsafePointer<Float>?, accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .forward, of: g, budget: workspace.columnBudget)
        let K = g.patchSize, P = g.outPixels, OC = g.outChannels, OW = g.outWidth
        let workers = Parallel.workers(for: plan.items)
        let cols = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)  // (K, columns)
        let staging = workspace.buffers(.loweredOutput, workers: workers, count: plan.images > 1 ? OC * plan.maxColumns : 0)  // (OC, columns)
        func forwardItem(_ worker: Int, _ index: Int) {
            let (n0, nb, rows) = plan.item(index, g)
            let ld = nb * rows.count * OW
            let yImage = y + n0 * OC * P
            im2col(cols[worker], ld: ld, x + n0 * g.inChannels * g.inPixels, images: nb, rows: rows, g)
            if nb == 1 {  // straight into the image's output rows
                let yRows = yImage + rows.lowerBound * OW
                BLAS.sgemm(m: OC, n: ld, k: K, a: w, lda: K, b: cols[worker], ldb: ld, beta: accumulate ? 1 : 0, c: yRows, ldc: P)
                if let bias {
                    for o in 0..<OC { let v = bias[o]; for p in 0..<ld { yRows[o * P + p] += v } }
                }
                return
            }
            let s = staging[worker]
            BLAS.sgemm(m: OC, n: ld, k: K, a: w, lda: K, b: cols[worker], ldb: ld, c: s, ldc: ld)
            scatterChunk(yImage, s, ld: ld, bias: bias, accumulate: accumulate, imageStride: P, images: nb, channels: OC, pixels: P)
        }
        Parallel.forEachClaimed(plan.items, workers: workers, forwardItem)
    }

    /// dW (outC, K) = sum over items of dY_item (outC, columns) * cols_item^T.
    static func weightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                               accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .weightGradient, of: g, budget: workspace.columnBudget)
        let K = g.patchSize, P = g.outPixels, OC = g.outChannels, OW = g.outWidth
        let workers = Parallel.workers(for: plan.items)
        let cols = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)  // (K, columns)
        let staging = workspace.buffers(.loweredOutput, workers: workers, count: plan.images > 1 ? OC * plan.maxColumns : 0)  // (OC, columns)
        let partials = workspace.buffers(.weightGradientPartials, workers: plan.groups, count: OC * K)  // (OC, K)
        func weightGradientItem(_ worker: Int, _ group: Int, _ index: Int, first: Bool) {
            let (n0, nb, rows) = plan.item(index, g)
            let ld = nb * rows.count * OW
            let dyImage = dy + n0 * OC * P
            im2col(cols[worker], ld: ld, x + n0 * g.inChannels * g.inPixels, images: nb, rows: rows, g)
            let dyMatrix: UnsafePointer<Float>, lda: Int  // (OC, ld)
            if nb == 1 {
                dyMatrix = dyImage + rows.lowerBound * OW
                lda = P
            } else {
                gatherChannelMajor(staging[worker], dyImage, ld: ld, images: nb, channels: OC, pixels: P)
                dyMatrix = UnsafePointer(staging[worker])
                lda = ld
            }
            BLAS.sgemm(transB: true, m: OC, n: K, k: ld, a: dyMatrix, lda: lda, b: cols[worker], ldb: ld,
                       beta: first ? 0 : 1, c: partials[group], ldc: K)
        }
        Parallel.forEachClaimed(plan.groups, workers: workers) { worker, group in
            let items = plan.items(ofGroup: group)
            for index in items { weightGradientItem(worker, group, index, first: index == items.lowerBound) }
        }
        sumPartials(dW, partials.prefix(plan.groups), accumulate: accumulate, count: OC * K)
    }

    /// dInput by dCols (K, columns) = W^T * dY_item, then col2im; items are whole images, so no
    /// two workers add into the same input image.
    static func inputGradient(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                              accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .inputGradient, of: g, budget: workspace.columnBudget)
        let K = g.patchSize, P = g.outPixels, OC = g.outChannels
        let workers = Parallel.workers(for: plan.items)
        let cols = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)  // (K, columns)
        let staging = workspace.buffers(.loweredOutput, workers: workers, count: plan.images > 1 ? OC * plan.maxColumns : 0)  // (OC, columns)
        func inputGradientItem(_ worker: Int, _ index: Int) {
            let (n0, nb, _) = plan.item(index, g)
            let ld = nb * P
            let dyImage = dy + n0 * OC * P
            let dyMatrix: UnsafePointer<Float>  // (OC, ld)
            if nb == 1 {
                dyMatrix = dyImage
            } else {
                gatherChannelMajor(staging[worker], dyImage, ld: ld, images: nb, channels: OC, pixels: P)
                dyMatrix = UnsafePointer(staging[worker])
            }
            BLAS.sgemm(transA: true, m: K, n: ld, k: OC, a: w, lda: K, b: dyMatrix, ldb: ld, c: cols[worker], ldc: ld)
            col2im(dx + n0 * g.inChannels * g.inPixels, cols[worker], ld: ld, accumulate: accumulate, images: nb, g)
        }
        Parallel.forEachClaimed(plan.items, workers: workers, inputGradientItem)
    }
}

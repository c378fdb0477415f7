import CKernels

// Lowering of stride-2 convolutions (dilation 1), in StrideTwo.c.
//
// im2col gathers every other input pixel: a short strided copy per output row and kernel tap.
// Each 16 values of such a slice are the even lanes of two vector loads of the input row, so the
// lowered matrix is written in one pass over the input, as plain im2col (C*kH*kW, images*outH*outW)
// without junk columns. The input gradient adds the columns back into rows split into their even
// and odd columns (where every tap's output row is one contiguous slice of one half) and joins
// the halves.

extension Conv2DGeometry {
    /// Whether the convolution is lowered by StrideTwo.c: stride 2 and dilation 1 in both
    /// directions, more than one kernel tap (a 1x1 kernel reads one phase: im2col's single
    /// gather is cheaper).
    var lowersByPhases: Bool {
        strideHeight == 2 && strideWidth == 2 && dilationHeight == 1 && dilationWidth == 1
            && kernelHeight * kernelWidth > 1
    }

    /// Scratch floats of one worker's col2im (a row and its halves).
    var splitRowScratch: Int { abn_stride2_col2im_scratch(inWidth, padWidth) }
}

extension ConvolutionPlan {
    /// Columns of slack after a split-row item's lowered columns.
    static let splitRowSlack = 16
}

/// cols (C*kH*kW, ld) = im2col of images of x, image b's columns at b * outPixels; ld leaves
/// `splitRowSlack` columns after the last image (StrideTwo.c's stores may write into them).
func lowerStrideTwo(_ cols: UnsafeMutablePointer<Float>, ld: Int, _ x: UnsafePointer<Float>, images: Int, _ g: Conv2DGeometry) {
    for b in 0..<images {
        abn_stride2_im2col(cols + b * g.outPixels, ld, x + b * g.inChannels * g.inPixels, g.inChannels, g.inHeight, g.inWidth,
                           g.kernelHeight, g.kernelWidth, g.padHeight, g.padWidth)
    }
}

// MARK: - Convolution and gradients

/// Per item: lower, one GEMM into a staging buffer, and the output planes into y.
/// The GEMM adds into the staging buffer (beta 1), which is zeroed once per call and left zero
/// after each item: with beta 0, OpenBLAS would clear it in a separate pass.
func convolveByPhases(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                      _ bias: UnsafePointer<Float>?, _ g: Conv2DGeometry, _ plan: ConvolutionPlan,
                      _ workspace: Workspace, accumulate: Bool) {
    let K = g.patchSize, OC = g.outChannels, P = g.outPixels
    let workers = Parallel.workers(for: plan.items)
    let cols = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)  // (K, columns)
    let staging = workspace.buffers(.staging, workers: workers, count: OC * plan.maxColumns)  // (OC, columns)
    for s in staging { s.update(repeating: 0, count: OC * plan.maxColumns) }
    Parallel.forEachClaimed(plan.items, workers: workers) { worker, index in
        let (n0, nb, _) = plan.item(index, g)
        let ld = nb * P, ldCols = ld + ConvolutionPlan.splitRowSlack, s = staging[worker]
        lowerStrideTwo(cols[worker], ld: ldCols, x + n0 * g.inChannels * g.inPixels, images: nb, g)
        BLAS.sgemm(m: OC, n: ld, k: K, a: w, lda: K, b: cols[worker], ldb: ldCols, beta: 1, c: s, ldc: ld)
        scatterChunk(y + n0 * OC * P, s, ld: ld, imageStride: P, images: nb, channels: OC, pixels: P, bias: bias,
                     accumulate: accumulate)
        s.update(repeating: 0, count: OC * ld)
    }
}

/// dW (outC, K) = the sum over items of dY_item (outC, columns) x cols_item^T, per group of
/// items (`ConvolutionPlan.groups`) and then over the groups in order. The GEMMs compute its
/// transpose, cols_item x dY_item^T (K, outC): OpenBLAS runs that shape 3-6% faster here.
func convWeightGradientByPhases(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                                _ x: UnsafePointer<Float>, _ g: Conv2DGeometry, _ plan: ConvolutionPlan,
                                _ accumulate: Bool, _ workspace: Workspace) {
    let K = g.patchSize, OC = g.outChannels, P = g.outPixels
    let workers = Parallel.workers(for: plan.items)
    let cols = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)  // (K, columns)
    let staging = workspace.buffers(.staging, workers: workers, count: OC * plan.maxColumns)  // (OC, columns)
    let partials = workspace.buffers(.weightGradient, workers: plan.groups, count: OC * K)  // (K, OC)
    Parallel.forEachClaimed(plan.groups, workers: workers) { worker, group in
        let items = plan.items(ofGroup: group)
        for index in items {
            let (n0, nb, _) = plan.item(index, g)
            let ld = nb * P, ldCols = ld + ConvolutionPlan.splitRowSlack
            lowerStrideTwo(cols[worker], ld: ldCols, x + n0 * g.inChannels * g.inPixels, images: nb, g)
            gatherChannelMajor(staging[worker], dy + n0 * OC * P, ld: ld, images: nb, channels: OC, pixels: P)
            BLAS.sgemm(transB: true, m: K, n: OC, k: ld, a: cols[worker], lda: ldCols, b: staging[worker], ldb: ld,
                       beta: index == items.lowerBound ? 0 : 1, c: partials[group], ldc: OC)
        }
    }
    sumPartials(dW, partials.prefix(plan.groups), count: OC * K, accumulate: accumulate, transposed: (K, OC))
}

/// dInput by dCols (K, columns) = W^T x dY_item, added back into split rows and joined into the
/// images; items are whole images, so no two workers add into the same image. The columns sit
/// `splitRowSlack` floats into their buffer: the col2im reads that far around each row.
func convInputGradientByPhases(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                               _ w: UnsafePointer<Float>, _ g: Conv2DGeometry, _ workspace: Workspace, accumulate: Bool) {
    let K = g.patchSize, OC = g.outChannels, C = g.inChannels, P = g.outPixels, slack = ConvolutionPlan.splitRowSlack
    let plan = ConvolutionPlan(g, budget: workspace.columnBudget, lowering: .phases)
    let workers = Parallel.workers(for: plan.items)
    let buffers = workspace.buffers(.columns, workers: workers, count: slack + plan.loweredCount)
    let staging = workspace.buffers(.staging, workers: workers, count: OC * plan.maxColumns)  // (OC, columns)
    let rows = workspace.buffers(.phasePlanes, workers: workers, count: g.splitRowScratch)
    Parallel.forEachClaimed(plan.items, workers: workers) { worker, index in
        let (n0, nb, _) = plan.item(index, g)
        let ld = nb * P, ldCols = ld + slack, cols = buffers[worker] + slack  // (K, columns)
        gatherChannelMajor(staging[worker], dy + n0 * OC * P, ld: ld, images: nb, channels: OC, pixels: P)
        BLAS.sgemm(transA: true, m: K, n: ld, k: OC, a: w, lda: K, b: staging[worker], ldb: ld,
                   beta: 0, c: cols, ldc: ldCols)
        for b in 0..<nb {
            abn_stride2_col2im(dx + (n0 + b) * C * g.inPixels, cols + b * P, ldCols, C, g.inHeight, g.inWidth,
                               g.kernelHeight, g.kernelWidth, g.padHeight, g.padWidth, accumulate ? 1 : 0, rows[worker])
        }
    }
}

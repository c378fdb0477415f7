import CKernels

// im2col of stride-2 convolutions (dilation 1), in StrideTwo.c.
//
// im2col gathers every other input pixel: a short strided copy per output row and kernel tap.
// Each 16 values of such a slice are the even lanes of two vector loads of the input row, so the
// lowered matrix is written in one pass over the input, as plain im2col (C*kH*kW, images*outH*outW)
// without junk columns. The input gradient (a col2im) adds the columns back into each padded input
// row held as its even and odd columns (where every tap's output row is one contiguous slice of
// one half) and joins the halves.

/// im2col for stride 2, dilation 1, in vectors (StrideTwo.c); its input gradient is the matching col2im.
enum Stride2Im2colLowering: ConvolutionLowering {
    static let name = "stride2-im2col"
    /// "phases": this lowering's name in `ABN_LOWERING` and reports from when it lowered by
    /// phase planes; `ABN_LOWERING` still accepts it.
    static let aliases = ["phases"]

    /// Stride 2 and dilation 1 in both directions, more than one kernel tap (a 1x1 kernel reads
    /// every other pixel only: `Im2colLowering`'s single gather is cheaper).
    static func applies(to g: Conv2DGeometry) -> Bool {
        g.strideHeight == 2 && g.strideWidth == 2 && g.dilationHeight == 1 && g.dilationWidth == 1
            && g.kernelHeight * g.kernelWidth > 1
    }

    /// Columns of slack after an item's lowered columns: StrideTwo.c's stores may write up to 15
    /// past a slice, and its col2im reads as far around one.
    static let columnSlack = 16

    /// Chunks of whole images whose columns fit the budget (at least one image).
    static func plan(for direction: ConvolutionDirection, of g: Conv2DGeometry, budget: Int) -> ConvolutionPlan {
        let images = max(1, min(g.batch, budget / (g.patchSize * g.outPixels)))
        return ConvolutionPlan(self, g, images: images, rows: g.outHeight, maxColumns: images * g.outPixels,
                               loweredCount: g.patchSize * (images * g.outPixels + columnSlack))
    }

    /// cols (C*kH*kW, ld) = im2col of `images` images of x, image b's columns at b * outPixels;
    /// ld leaves `columnSlack` columns after the last image.
    private static func lower(_ cols: UnsafeMutablePointer<Float>, ld: Int, _ x: UnsafePointer<Float>, images: Int, _ g: Conv2DGeometry) {
        for b in 0..<images {
            abn_stride2_im2col(cols + b * g.outPixels, ld, x + b * g.inChannels * g.inPixels, g.inChannels, g.inHeight, g.inWidth,
                               g.kernelHeight, g.kernelWidth, g.padHeight, g.padWidth)
        }
    }

    /// Per item: lower, one GEMM into a staging buffer, and the output planes into y.
    /// The GEMM adds into the staging buffer (beta 1), which is zeroed once per call and left zero
    /// after each item: with beta 0, OpenBLAS would clear it in a separate pass.
    static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                        _ bias: UnsafePointer<Float>?, accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .forward, of: g, budget: workspace.columnBudget)
        let K = g.patchSize, OC = g.outChannels, P = g.outPixels
        let workers = Parallel.workers(for: plan.items)
        let cols = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)  // (K, columns)
        let staging = workspace.buffers(.loweredOutput, workers: workers, count: OC * plan.maxColumns)  // (OC, columns)
        for s in staging { s.update(repeating: 0, count: OC * plan.maxColumns) }
        Parallel.forEachClaimed(plan.items, workers: workers) { worker, index in
            let (n0, nb, _) = plan.item(index, g)
            let ld = nb * P, ldCols = ld + columnSlack, s = staging[worker]
            lower(cols[worker], ld: ldCols, x + n0 * g.inChannels * g.inPixels, images: nb, g)
            BLAS.sgemm(m: OC, n: ld, k: K, a: w, lda: K, b: cols[worker], ldb: ldCols, beta: 1, c: s, ldc: ld)
            scatterChunk(y + n0 * OC * P, s, ld: ld, bias: bias, accumulate: accumulate, imageStride: P, images: nb, channels: OC, pixels: P)
            s.update(repeating: 0, count: OC * ld)
        }
    }

    /// dW (outC, K) = the sum over items of dY_item (outC, columns) x cols_item^T, per group of
    /// items and then over the groups in order. The GEMMs compute its transpose, cols_item x
    /// dY_item^T (K, outC): OpenBLAS runs that shape 3-6% faster here.
    static func weightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                               accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .weightGradient, of: g, budget: workspace.columnBudget)
        let K = g.patchSize, OC = g.outChannels, P = g.outPixels
        let workers = Parallel.workers(for: plan.items)
        let cols = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)  // (K, columns)
        let staging = workspace.buffers(.loweredOutput, workers: workers, count: OC * plan.maxColumns)  // (OC, columns)
        let partials = workspace.buffers(.weightGradientPartials, workers: plan.groups, count: OC * K)  // (K, OC)
        Parallel.forEachClaimed(plan.groups, workers: workers) { worker, group in
            let items = plan.items(ofGroup: group)
            for index in items {
                let (n0, nb, _) = plan.item(index, g)
                let ld = nb * P, ldCols = ld + columnSlack
                lower(cols[worker], ld: ldCols, x + n0 * g.inChannels * g.inPixels, images: nb, g)
                gatherChannelMajor(staging[worker], dy + n0 * OC * P, ld: ld, images: nb, channels: OC, pixels: P)
                BLAS.sgemm(transB: true, m: K, n: OC, k: ld, a: cols[worker], lda: ldCols, b: staging[worker], ldb: ld,
                           beta: index == items.lowerBound ? 0 : 1, c: partials[group], ldc: OC)
            }
        }
        sumPartials(dW, partials.prefix(plan.groups), accumulate: accumulate, count: OC * K, transposed: (K, OC))
    }

    /// dInput by dCols (K, columns) = W^T x dY_item, added back into the input rows by
    /// StrideTwo.c's col2im; items are whole images, so no two workers add into the same image.
    /// The columns sit `columnSlack` floats into their buffer: the col2im reads that far around
    /// each row.
    static func inputGradient(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                              accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .inputGradient, of: g, budget: workspace.columnBudget)
        let K = g.patchSize, OC = g.outChannels, C = g.inChannels, P = g.outPixels
        let workers = Parallel.workers(for: plan.items)
        let buffers = workspace.buffers(.loweredInput, workers: workers, count: columnSlack + plan.loweredCount)
        let staging = workspace.buffers(.loweredOutput, workers: workers, count: OC * plan.maxColumns)  // (OC, columns)
        let rows = workspace.buffers(.rowHalves, workers: workers, count: abn_stride2_col2im_scratch(g.inWidth, g.padWidth))
        Parallel.forEachClaimed(plan.items, workers: workers) { worker, index in
            let (n0, nb, _) = plan.item(index, g)
            let ld = nb * P, ldCols = ld + columnSlack, cols = buffers[worker] + columnSlack  // (K, columns)
            gatherChannelMajor(staging[worker], dy + n0 * OC * P, ld: ld, images: nb, channels: OC, pixels: P)
            BLAS.sgemm(transA: true, m: K, n: ld, k: OC, a: w, lda: K, b: staging[worker], ldb: ld,
                       beta: 0, c: cols, ldc: ldCols)
            for b in 0..<nb {
                abn_stride2_col2im(dx + (n0 + b) * C * g.inPixels, cols + b * P, ldCols, C, g.inHeight, g.inWidth,
                                   g.kernelHeight, g.kernelWidth, g.padHeight, g.padWidth, accumulate ? 1 : 0, rows[worker])
            }
        }
    }
}

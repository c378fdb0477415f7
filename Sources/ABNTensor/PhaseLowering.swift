// Phase lowering of stride-2 convolutions (dilation 1).
//
// im2col gathers every other input pixel: a short strided copy per output row and kernel
// tap. Splitting each input plane once into its four phases, P_ab[u][v] = x[2u + a][2v + b],
// turns every tap into a plain shift of one phase plane: the input pixel of output (oh, ow)
// and tap (i, j) is P_ab[oh + di][ow + dj], with a, di the remainder and quotient of
// i - padH by 2 (and b, dj of j - padW). Phase planes are stored `phasePitch` columns wide and
// the lowered matrix uses the same pitch per output row, so each im2col row is ONE contiguous
// copy of outH * pitch values; the pitch - outW junk columns per output row are computed by
// the GEMM and dropped (in the forward), or meet zeros (the gathered output gradient).

extension Conv2DGeometry {
    /// Whether the convolution is lowered by phases: stride 2 and dilation 1 in both directions,
    /// more than one kernel tap (a 1x1 kernel reads one phase: im2col's single gather is cheaper).
    var lowersByPhases: Bool {
        strideHeight == 2 && strideWidth == 2 && dilationHeight == 1 && dilationWidth == 1
            && kernelHeight * kernelWidth > 1
    }

    /// Phase and shift of kernel row i: i - padH = 2 * shift + phase (floor division).
    func rowPhase(_ i: Int) -> (phase: Int, shift: Int) { floorDivision(i - padHeight) }
    /// Phase and shift of kernel column j: j - padW = 2 * shift + phase.
    func columnPhase(_ j: Int) -> (phase: Int, shift: Int) { floorDivision(j - padWidth) }

    private func floorDivision(_ n: Int) -> (phase: Int, shift: Int) {
        let shift = n >= 0 ? n / 2 : -((1 - n) / 2)
        return (n - 2 * shift, shift)
    }

    /// Rows of a phase plane: the output rows plus the spread of the kernel rows' shifts
    /// (plane row 0 is shift rowPhase(0).shift).
    var phaseRows: Int { outHeight + rowPhase(kernelHeight - 1).shift - rowPhase(0).shift }
    /// Columns of a phase plane and row pitch of the lowered matrix.
    var phasePitch: Int { outWidth + columnPhase(kernelWidth - 1).shift - columnPhase(0).shift }
    /// Elements of a phase plane, with slack for the junk columns of the last output row.
    var phasePlaneCount: Int { phaseRows * phasePitch + phasePitch - outWidth }
    /// Lowered columns per image: outH * phasePitch.
    var phasedPixels: Int { outHeight * phasePitch }
}

/// planes (images, C, 4, phasePlaneCount): phase (a, b) of channel c of image n at
/// planes + ((n * C + c) * 4 + 2a + b) * phasePlaneCount, row r holding input row
/// 2 * (r + rowPhase(0).shift) + a and column v input column 2 * (v + columnPhase(0).shift) + b,
/// zero outside the image.
func splitPhases(_ planes: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, images: Int, _ g: Conv2DGeometry) {
    let H = g.inHeight, W = g.inWidth, rows = g.phaseRows, pitch = g.phasePitch, count = g.phasePlaneCount
    let firstRow = g.rowPhase(0).shift
    // Input column 2k + b lands in column k + left of phase b (the padding's shift, >= 0);
    // `pairs` input column pairs fit the plane.
    let left = -g.columnPhase(0).shift
    let pairs = max(0, min((W + 1) / 2, pitch - left))
    planes.update(repeating: 0, count: images * g.inChannels * 4 * count)
    for n in 0..<images * g.inChannels {
        let source = x + n * H * W
        for ih in 0..<H {
            let a = ih % 2, r = ih / 2 - firstRow
            guard r >= 0 && r < rows else { continue }
            let even = planes + (n * 4 + 2 * a) * count + r * pitch + left
            deinterleave(even, even + count, source + ih * W, pairs: pairs, width: W)
        }
    }
}

/// cols (C*kH*kW, ld): row (c, i, j), image b's columns b * phasedPixels ..< (b+1) * phasedPixels,
/// is phase (rowPhase(i).phase, columnPhase(j).phase) of channel c shifted to the tap: one copy.
func lowerPhases(_ cols: UnsafeMutablePointer<Float>, ld: Int, _ planes: UnsafePointer<Float>, images: Int, _ g: Conv2DGeometry) {
    let kH = g.kernelHeight, kW = g.kernelWidth, C = g.inChannels, pitch = g.phasePitch, count = g.phasePlaneCount
    let P = g.phasedPixels, firstRow = g.rowPhase(0).shift, firstColumn = g.columnPhase(0).shift
    for b in 0..<images {
        for c in 0..<C {
            let phases = planes + (b * C + c) * 4 * count
            for i in 0..<kH {
                let (a, di) = g.rowPhase(i)
                for j in 0..<kW {
                    let (bb, dj) = g.columnPhase(j)
                    let source = phases + (2 * a + bb) * count + (di - firstRow) * pitch + (dj - firstColumn)
                    (cols + ((c * kH + i) * kW + j) * ld + b * P).update(from: source, count: P)
                }
            }
        }
    }
}

/// dInput (images, C, H, W) = (accumulate ? dInput : 0) + the sum of dCols (C*kH*kW, ld),
/// laid out like `lowerPhases`'s result, over the taps each pixel feeds: added up per phase
/// plane in `planes` (scratch like `splitPhases`'s), then interleaved into the images.
/// Leaves dCols zero (see `convInputGradientByPhases`).
func addPhases(_ dInput: UnsafeMutablePointer<Float>, _ dCols: UnsafeMutablePointer<Float>, ld: Int,
               _ planes: UnsafeMutablePointer<Float>, images: Int, _ g: Conv2DGeometry, accumulate: Bool) {
    let kH = g.kernelHeight, kW = g.kernelWidth, C = g.inChannels, H = g.inHeight, W = g.inWidth
    let pitch = g.phasePitch, count = g.phasePlaneCount, P = g.phasedPixels
    let firstRow = g.rowPhase(0).shift, firstColumn = g.columnPhase(0).shift
    let left = -firstColumn, pairs = max(0, min((W + 1) / 2, pitch - left))  // as in splitPhases
    for b in 0..<images {
        for c in 0..<C {
            let phases = planes + (b * C + c) * 4 * count
            phases.update(repeating: 0, count: 4 * count)
            for i in 0..<kH {
                let (a, di) = g.rowPhase(i)
                for j in 0..<kW {
                    let (bb, dj) = g.columnPhase(j)
                    let target = phases + (2 * a + bb) * count + (di - firstRow) * pitch + (dj - firstColumn)
                    let source = dCols + ((c * kH + i) * kW + j) * ld + b * P
                    for t in 0..<P {
                        target[t] += source[t]
                        source[t] = 0
                    }
                }
            }
            // interleave the phases back into the image's rows: the inverse of splitPhases
            let image = dInput + (b * C + c) * H * W
            for ih in 0..<H {
                let row = image + ih * W
                let a = ih % 2, r = ih / 2 - firstRow
                guard r >= 0 && r < g.phaseRows else {  // no output reads this row
                    if !accumulate { row.update(repeating: 0, count: W) }
                    continue
                }
                let even = phases + 2 * a * count + r * pitch + left
                interleave(row, even, even + count, pairs: pairs, width: W, accumulate: accumulate)
            }
        }
    }
}

// MARK: - Convolution and gradients

/// Per item: split into phases, lower by copies, one GEMM into a staging buffer, and the
/// output rows without their junk columns into y. The GEMM adds into the staging buffer
/// (beta 1), which is zeroed once per call and left zero after each item: with beta 0,
/// OpenBLAS would clear it in a separate pass.
func convolveByPhases(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                      _ bias: UnsafePointer<Float>?, _ g: Conv2DGeometry, _ plan: ConvolutionPlan,
                      _ workspace: Workspace, accumulate: Bool) {
    let K = g.patchSize, OC = g.outChannels, OW = g.outWidth, C = g.inChannels
    let pitch = g.phasePitch, P = g.phasedPixels
    let workers = Parallel.workers(for: plan.items)
    let cols = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)  // (K, columns)
    let staging = workspace.buffers(.staging, workers: workers, count: OC * plan.maxColumns)  // (OC, columns)
    let planes = workspace.buffers(.phasePlanes, workers: workers, count: plan.images * C * 4 * g.phasePlaneCount)
    for s in staging { s.update(repeating: 0, count: OC * plan.maxColumns) }
    Parallel.forEachClaimed(plan.items, workers: workers) { worker, index in
        let (n0, nb, _) = plan.item(index, g)
        let ld = nb * P, s = staging[worker]
        splitPhases(planes[worker], x + n0 * C * g.inPixels, images: nb, g)
        lowerPhases(cols[worker], ld: ld, planes[worker], images: nb, g)
        BLAS.sgemm(m: OC, n: ld, k: K, a: w, lda: K, b: cols[worker], ldb: ld, beta: 1, c: s, ldc: ld)
        scatterChunk(y + n0 * OC * g.outPixels, s, ld: ld, imageStride: P, images: nb, channels: OC,
                     pixels: g.outPixels, width: OW, pitch: pitch, bias: bias, accumulate: accumulate)
        s.update(repeating: 0, count: OC * ld)
    }
}

/// dW (outC, K) = the sum over items of dY_item (outC, columns, pitched) x cols_item^T, per
/// group of items (`ConvolutionPlan.groups`) and then over the groups in order.
func convWeightGradientByPhases(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                                _ x: UnsafePointer<Float>, _ g: Conv2DGeometry, _ plan: ConvolutionPlan,
                                _ accumulate: Bool, _ workspace: Workspace) {
    let K = g.patchSize, OC = g.outChannels, C = g.inChannels, P = g.phasedPixels
    let workers = Parallel.workers(for: plan.items)
    let cols = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)  // (K, columns)
    let staging = workspace.buffers(.staging, workers: workers, count: OC * plan.maxColumns)  // (OC, columns)
    let planes = workspace.buffers(.phasePlanes, workers: workers, count: plan.images * C * 4 * g.phasePlaneCount)
    let partials = workspace.buffers(.weightGradient, workers: plan.groups, count: OC * K)  // (OC, K)
    Parallel.forEachClaimed(plan.groups, workers: workers) { worker, group in
        let items = plan.items(ofGroup: group)
        for index in items {
            let (n0, nb, _) = plan.item(index, g)
            let ld = nb * P
            splitPhases(planes[worker], x + n0 * C * g.inPixels, images: nb, g)
            lowerPhases(cols[worker], ld: ld, planes[worker], images: nb, g)
            gatherChannelMajor(staging[worker], dy + n0 * OC * g.outPixels, ld: ld, images: nb, channels: OC,
                               pixels: g.outPixels, width: g.outWidth, pitch: g.phasePitch)
            BLAS.sgemm(transB: true, m: OC, n: K, k: ld, a: staging[worker], lda: ld, b: cols[worker], ldb: ld,
                       beta: index == items.lowerBound ? 0 : 1, c: partials[group], ldc: K)
        }
    }
    sumPartials(dW, partials.prefix(plan.groups), count: OC * K, accumulate: accumulate)
}

/// dInput by dCols (K, columns) = W^T x dY_item (pitched), added up per phase and interleaved
/// into the images; items are whole images, so no two workers add into the same image. As in
/// the forward, the GEMM adds into dCols, zeroed once per call and left zero by `addPhases`.
func convInputGradientByPhases(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                               _ w: UnsafePointer<Float>, _ g: Conv2DGeometry, _ workspace: Workspace, accumulate: Bool) {
    let K = g.patchSize, OC = g.outChannels, C = g.inChannels, P = g.phasedPixels
    let plan = ConvolutionPlan(g, budget: workspace.columnBudget, lowering: .phases)
    let workers = Parallel.workers(for: plan.items)
    let cols = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)  // (K, columns)
    let staging = workspace.buffers(.staging, workers: workers, count: OC * plan.maxColumns)  // (OC, columns)
    let planes = workspace.buffers(.phasePlanes, workers: workers, count: plan.images * C * 4 * g.phasePlaneCount)
    for c in cols { c.update(repeating: 0, count: plan.loweredCount) }
    Parallel.forEachClaimed(plan.items, workers: workers) { worker, index in
        let (n0, nb, _) = plan.item(index, g)
        let ld = nb * P
        gatherChannelMajor(staging[worker], dy + n0 * OC * g.outPixels, ld: ld, images: nb, channels: OC,
                               pixels: g.outPixels, width: g.outWidth, pitch: g.phasePitch)
        BLAS.sgemm(transA: true, m: K, n: ld, k: OC, a: w, lda: K, b: staging[worker], ldb: ld,
                   beta: 1, c: cols[worker], ldc: ld)
        addPhases(dx + n0 * C * g.inPixels, cols[worker], ld: ld, planes[worker], images: nb, g, accumulate: accumulate)
    }
}

import CKernels

// Winograd F(2x2, 3x3) for 3x3 convolutions with stride 1, dilation 1 and padding 1.
//
// Each 2x2 block of output pixels (a tile) comes from the 4x4 input patch d around it:
// Y = A^T [U ⊙ V] A with V = B^T d B (the transformed patch) and U = G g G^T (the transformed
// 3x3 kernel g), summed over input channels. That is 16 multiply-adds per tile and channel
// pair where the direct convolution needs 36: 2.25x fewer. Over a batch of tiles, position ξ
// of the 4x4 transform is one GEMM, M_ξ (outC, tiles) = U_ξ (outC, C) x V_ξ (C, tiles). The
// transforms only add, subtract and halve.
//
// The weight gradient is the derivative of the same expression: dU_ξ = the sum over tiles of
// dM_ξ (outC, tiles) x V_ξ^T with dM = A dY A^T, then dW = G^T dU G. The input gradient is the
// forward convolution of dY with the flipped, transposed kernel, again 3x3, stride 1, pad 1.
//
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
//
// Buffers hold position ξ = 4i + k (row i, column k of the 4x4 transform) as plane ξ, and
// tiles image-major, then by tile row, then tile column.

extension Conv2DGeometry {
    /// Tile rows of an image: ceil(outH / 2).
    var tileRows: Int { (outHeight + 1) / 2 }
    /// Tile columns of an image: ceil(outW / 2).
    var tileColumns: Int { (outWidth + 1) / 2 }
    /// GEMM columns per image for `rows` tile rows: rows * tileColumns rounded up to a multiple
    /// of 4 (the transforms run four tiles at a time).
    func tileStride(tileRows rows: Int) -> Int { (rows * tileColumns + 3) / 4 * 4 }

    /// The tile rows of output rows `rows` (which start at an even row).
    func tileRows(of rows: Range<Int>) -> Range<Int> { rows.lowerBound / 2..<(rows.upperBound + 1) / 2 }
}

/// Transform positions of F(2x2, 3x3).
let winogradPositions = 16

/// u (16, outC, C) = G g G^T for each kernel g = weight (outC, C, 3, 3)[o, c].
func transformKernel(_ u: UnsafeMutablePointer<Float>, _ weight: UnsafePointer<Float>, _ g: Conv2DGeometry) {
    let pairs = g.outChannels * g.inChannels
    forBlocks(pairs) { r in abn_winograd_kernel(u, weight, pairs, r.lowerBound, r.count) }
}

/// dW (outC, C, 3, 3) = (accumulate ? dW : 0) + G^T S G, S the sum in order of `partials`,
/// each (16, outC, C) like `transformKernel`'s result; the sum is left in the first partial.
func untransformKernelGradient(_ dW: UnsafeMutablePointer<Float>, _ partials: ArraySlice<UnsafeMutablePointer<Float>>,
                               accumulate: Bool, _ g: Conv2DGeometry) {
    let pairs = g.outChannels * g.inChannels
    guard let sum = partials.first else {  // an empty batch
        if !accumulate { dW.update(repeating: 0, count: pairs * 9) }
        return
    }
    forBlocks(winogradPositions * pairs) { r in
        for p in partials.dropFirst() {
            for i in r { sum[i] += p[i] }
        }
    }
    forBlocks(pairs) { r in abn_winograd_kernel_gradient(dW, sum, pairs, r.lowerBound, r.count, accumulate ? 1 : 0) }
}

/// v (16, C, ld): column b * stride + (ty - tileRows.lowerBound) * tileColumns + tx of row
/// (ξ, c), stride = tileStride(tileRows: tileRows.count), holds (B^T d B)[ξ] for the 4x4 patch d
/// of input rows 2ty-1..2ty+2 and columns 2tx-1..2tx+2 of channel c of image b of `images`
/// (C, H, W) images at x, zero outside the image, for the tile rows ty in `tileRows`. The
/// columns past each image's tiles hold finite junk.
func transformInput(_ v: UnsafeMutablePointer<Float>, ld: Int, _ x: UnsafePointer<Float>, images: Int,
                    tileRows: Range<Int>, _ g: Conv2DGeometry) {
    let scratch = abn_winograd_input_scratch(tileRows.count, g.tileColumns)
    withUnsafeTemporaryAllocation(of: Float.self, capacity: scratch) { buffer in
        abn_winograd_input(v, ld, x, images, g.inChannels, g.inHeight, g.inWidth, g.tileColumns, tileRows.lowerBound, tileRows.count,
                           buffer.baseAddress!)
    }
}

/// y (images, outC, outH, outW) = (accumulate ? y : 0) + A^T M A + bias in the output rows of
/// `tileRows`, from m (16, outC, ld) laid out like `transformInput`'s columns; outputs beyond
/// outH or outW are dropped. Leaves m zero (see `WinogradLowering.forward`).
func transformOutput(_ y: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>, ld: Int, bias: UnsafePointer<Float>?,
                     accumulate: Bool, images: Int, tileRows: Range<Int>, _ g: Conv2DGeometry) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * g.tileStride(tileRows: tileRows.count)) { scratch in
        abn_winograd_output(y, m, ld, images, g.outChannels, g.outHeight, g.outWidth, g.tileColumns, tileRows.lowerBound, tileRows.count,
                            bias, accumulate ? 1 : 0, scratch.baseAddress!)
    }
}

/// dm (16, outC, ld) = A dY A^T for each 2x2 output tile in `tileRows` of dY (images, outC,
/// outH, outW) (zero beyond outH, outW), laid out like `transformInput`'s columns, with zeros
/// in the columns beyond each image's tiles: the gradient of M.
func transformOutputGradient(_ dm: UnsafeMutablePointer<Float>, ld: Int, _ dy: UnsafePointer<Float>, images: Int,
                             tileRows: Range<Int>, _ g: Conv2DGeometry) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * g.tileStride(tileRows: tileRows.count)) { scratch in
        abn_winograd_output_gradient(dm, ld, dy, images, g.outChannels, g.outHeight, g.outWidth, g.tileColumns, tileRows.lowerBound,
                                     tileRows.count, scratch.baseAddress!)
    }
}

/// Winograd F(2x2, 3x3): 16 GEMMs of depth C per item over transformed tiles. Its input
/// gradient is a transposed convolution (Winograd again) wherever it applies; col2im's were
/// it not.
enum WinogradLowering: ConvolutionLowering {
    static let name = "winograd"
    static let inputGradientFallback: (any ConvolutionLowering.Type)? = Im2colLowering.self
    /// Four partial sums: they hold 16 values per kernel instead of 9.
    static let weightGradientGroups = 4

    /// A 3x3 kernel, stride 1, dilation 1, padding 1, and at least 16 input and output channels
    /// (its GEMMs are C deep and outC tall; below that they run too far from the GEMM peak to
    /// pay for the transforms).
    static func applies(to g: Conv2DGeometry) -> Bool {
        g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideHeight == 1 && g.strideWidth == 1
            && g.dilationHeight == 1 && g.dilationWidth == 1 && g.padHeight == 1 && g.padWidth == 1
            && g.inChannels >= 16 && g.outChannels >= 16
    }

    /// Items hold about this many tiles (the GEMMs' columns): as many whole images as fit, or
    /// blocks of one image's tile rows, so that a worker's transformed input and products stay
    /// in its core's cache. (Not the column budget: Winograd items are sized in tiles.)
    static let tilesPerItem = 200

    static func plan(for direction: ConvolutionDirection, of g: Conv2DGeometry, budget: Int) -> ConvolutionPlan {
        let perImage = g.tileStride(tileRows: g.tileRows)
        let images: Int, rows: Int, maxColumns: Int
        if perImage <= tilesPerItem {
            images = max(1, min(g.batch, tilesPerItem / perImage))
            rows = g.outHeight
            maxColumns = images * perImage
        } else {  // blocks of tile rows, as even as they can be
            let blocks = (perImage + tilesPerItem - 1) / tilesPerItem
            let tileRows = (g.tileRows + blocks - 1) / blocks
            images = 1
            rows = 2 * tileRows
            maxColumns = g.tileStride(tileRows: tileRows)
        }
        return ConvolutionPlan(self, g, images: images, rows: rows, maxColumns: maxColumns,
                               loweredCount: winogradPositions * g.inChannels * maxColumns)
    }

    /// Per item: the input transform, 16 GEMMs U_ξ x V_ξ, the output transform. The GEMMs add
    /// into M (beta 1), which is zeroed once per call and left zero by each output transform:
    /// with beta 0, OpenBLAS would clear it in a separate pass over memory for every GEMM.
    static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                        _ bias: UnsafePointer<Float>?, accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .forward, of: g, budget: workspace.columnBudget)
        let C = g.inChannels, OC = g.outChannels, n = winogradPositions
        let workers = Parallel.workers(for: plan.items)
        let transformedInput = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)  // V (16, C, tiles)
        let products = workspace.buffers(.loweredOutput, workers: workers, count: n * OC * plan.maxColumns)  // M (16, outC, tiles)
        let u = workspace.buffers(.loweredWeight, workers: 1, count: n * OC * C)[0]  // U (16, outC, C)
        transformKernel(u, w, g)
        for m in products { m.update(repeating: 0, count: n * OC * plan.maxColumns) }
        Parallel.forEachClaimed(plan.items, workers: workers) { worker, index in
            let (n0, nb, rows) = plan.item(index, g)
            let tileRows = g.tileRows(of: rows), tiles = nb * g.tileStride(tileRows: tileRows.count)
            let v = transformedInput[worker], m = products[worker]
            transformInput(v, ld: tiles, x + n0 * C * g.inPixels, images: nb, tileRows: tileRows, g)
            for xi in 0..<n {
                BLAS.sgemm(m: OC, n: tiles, k: C, a: u + xi * OC * C, lda: C, b: v + xi * C * tiles, ldb: tiles,
                           beta: 1, c: m + xi * OC * tiles, ldc: tiles)
            }
            transformOutput(y + n0 * OC * g.outPixels, m, ld: tiles, bias: bias, accumulate: accumulate, images: nb,
                            tileRows: tileRows, g)
        }
    }

    /// dW = G^T dU G with dU_ξ (outC, C) the sum over items of dM_ξ x V_ξ^T, accumulated per
    /// group of items and then over the groups in order.
    static func weightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                               accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .weightGradient, of: g, budget: workspace.columnBudget)
        let C = g.inChannels, OC = g.outChannels, n = winogradPositions
        let workers = Parallel.workers(for: plan.items)
        let transformedInput = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)  // V (16, C, tiles)
        let transformedGradient = workspace.buffers(.loweredOutput, workers: workers, count: n * OC * plan.maxColumns)  // dM (16, outC, tiles)
        let partials = workspace.buffers(.weightGradientPartials, workers: plan.groups, count: n * OC * C)  // dU (16, outC, C)
        Parallel.forEachClaimed(plan.groups, workers: workers) { worker, group in
            let items = plan.items(ofGroup: group)
            for index in items {
                let (n0, nb, rows) = plan.item(index, g)
                let tileRows = g.tileRows(of: rows), tiles = nb * g.tileStride(tileRows: tileRows.count)
                let v = transformedInput[worker], dm = transformedGradient[worker]
                transformInput(v, ld: tiles, x + n0 * C * g.inPixels, images: nb, tileRows: tileRows, g)
                transformOutputGradient(dm, ld: tiles, dy + n0 * OC * g.outPixels, images: nb, tileRows: tileRows, g)
                for xi in 0..<n {
                    BLAS.sgemm(transB: true, m: OC, n: C, k: tiles, a: dm + xi * OC * tiles, lda: tiles,
                               b: v + xi * C * tiles, ldb: tiles, beta: index == items.lowerBound ? 0 : 1,
                               c: partials[group] + xi * OC * C, ldc: C)
                }
            }
        }
        untransformKernelGradient(dW, partials.prefix(plan.groups), accumulate: accumulate, g)
    }
}

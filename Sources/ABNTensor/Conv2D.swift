/// Shapes of a 2-D convolution over an NCHW batch.
public struct Conv2DGeometry: Sendable, Equatable, CustomStringConvertible {
    public let batch: Int
    public let inChannels: Int
    public let inHeight: Int
    public let inWidth: Int
    public let outChannels: Int
    public let kernelHeight: Int
    public let kernelWidth: Int
    public let strideHeight: Int
    public let strideWidth: Int
    public let padHeight: Int
    public let padWidth: Int
    public let dilationHeight: Int
    public let dilationWidth: Int

    /// A convolution of an input of shape `input` (N, C, H, W); square kernel, stride,
    /// padding and dilation unless the `(height, width)` pairs are given.
    public init(input: [Int], outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), dilation: (Int, Int) = (1, 1)) {
        precondition(input.count == 4, "a convolution input must be NCHW, got shape \(input)")
        precondition(kernel.0 >= 1 && kernel.1 >= 1 && stride.0 >= 1 && stride.1 >= 1
                     && dilation.0 >= 1 && dilation.1 >= 1 && padding.0 >= 0 && padding.1 >= 0,
                     "kernel, stride and dilation must be >= 1 and padding >= 0")
        batch = input[0]; inChannels = input[1]; inHeight = input[2]; inWidth = input[3]
        self.outChannels = outChannels
        kernelHeight = kernel.0; kernelWidth = kernel.1
        strideHeight = stride.0; strideWidth = stride.1
        padHeight = padding.0; padWidth = padding.1
        dilationHeight = dilation.0; dilationWidth = dilation.1
        precondition(outHeight >= 1 && outWidth >= 1,
                     "a \(kernel) kernel with dilation \(dilation) and padding \(padding) does not fit an input of shape \(input)")
    }

    public init(input: [Int], outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1) {
        self.init(input: input, outChannels: outChannels, kernel: (kernel, kernel), stride: (stride, stride),
                  padding: (padding, padding), dilation: (dilation, dilation))
    }

    public var outHeight: Int { (inHeight + 2 * padHeight - dilationHeight * (kernelHeight - 1) - 1) / strideHeight + 1 }
    public var outWidth: Int { (inWidth + 2 * padWidth - dilationWidth * (kernelWidth - 1) - 1) / strideWidth + 1 }
    /// Rows of the im2col matrix: C * kH * kW.
    public var patchSize: Int { inChannels * kernelHeight * kernelWidth }
    /// Output pixels per image and channel: outH * outW.
    public var outPixels: Int { outHeight * outWidth }
    public var inPixels: Int { inHeight * inWidth }

    public var inputShape: [Int] { [batch, inChannels, inHeight, inWidth] }
    public var outputShape: [Int] { [batch, outChannels, outHeight, outWidth] }
    public var weightShape: [Int] { [outChannels, inChannels, kernelHeight, kernelWidth] }

    /// Floating-point operations of the forward pass (2 per multiply-add); each backward
    /// direction (input gradient, weight gradient) costs the same.
    public var forwardFlops: Double { 2 * Double(batch) * Double(outChannels) * Double(patchSize) * Double(outPixels) }

    public var description: String {
        "\(inChannels)->\(outChannels) \(kernelHeight)x\(kernelWidth) s\(strideHeight) p\(padHeight) d\(dilationHeight) on \(inHeight)x\(inWidth)"
    }

    /// How the forward pass and the weight gradient are lowered to GEMMs, for reports:
    /// "winograd", "row-shift", "phases" or "im2col".
    public var lowering: String {
        switch ConvolutionPlan.lowering(of: self) {
        case .winograd: "winograd"
        case .rowShift: "row-shift"
        case .phases: "phases"
        case .im2col: "im2col"
        }
    }

    /// For kernel column `j`: the output columns whose input column lies inside the image (an
    /// empty range at or before outWidth when none does, e.g. a dilation wider than the image).
    func validOutputColumns(kernelColumn j: Int) -> Range<Int> {
        let offset = j * dilationWidth - padWidth  // iw = ow * stride + offset
        let lo = min(outWidth, offset >= 0 ? 0 : (-offset + strideWidth - 1) / strideWidth)
        let hi = inWidth - 1 - offset < 0 ? 0 : min(outWidth, (inWidth - 1 - offset) / strideWidth + 1)
        return lo..<max(lo, hi)
    }
}

// MARK: - Work plan

/// How a convolution's batch is cut into work items for the workers, so that a worker's
/// lowered matrix stays in its core's cache: a chunk of whole images when one image's lowered
/// matrix fits the budget, else a block of one image's output rows. With row-shifted lowering
/// the chunk is as small as gives GEMMs `minimumColumns` wide (one image unless they are small).
struct ConvolutionPlan {
    /// Images per item (1 when items are row blocks).
    let images: Int
    /// Output rows per item (all rows when items are chunks of images).
    let rows: Int
    let blocksPerImage: Int
    let items: Int
    /// Columns of the largest item's GEMM (output pixels, with row-shifted lowering also the
    /// junk rows between stacked images).
    let maxColumns: Int
    /// Elements of the largest item's lowered matrix (im2col columns or row-shifted rows).
    let loweredCount: Int

    /// How an item is lowered: im2col columns, optionally with items split into row blocks (not
    /// for col2im, which adds whole images); row-shifted rows (RowShiftLowering.swift);
    /// Winograd-transformed tiles (WinogradLowering.swift); or phase planes shifted per tap
    /// (stride 2, PhaseLowering.swift).
    enum Lowering { case im2col(splitRows: Bool), rowShift, winograd, phases }

    /// How this plan's items are lowered.
    let lowering: Lowering

    /// The plan of the forward pass and the weight gradient: Winograd, row-shifted or phase
    /// lowering where the geometry allows it, else im2col with row blocks for large images.
    init(_ g: Conv2DGeometry, budget: Int) {
        self.init(g, budget: budget, lowering: Self.lowering(of: g))
    }

    /// The lowering of the forward pass and the weight gradient of `g`.
    static func lowering(of g: Conv2DGeometry) -> Lowering {
        g.usesWinograd ? .winograd : g.lowersByRowShift ? .rowShift : g.lowersByPhases ? .phases : .im2col(splitRows: true)
    }

    /// Row-shifted lowering stacks small images until a GEMM has at least this many columns.
    static let minimumColumns = 256
    /// Winograd items hold about this many tiles (the GEMMs' columns): as many whole images as
    /// fit, or blocks of one image's tile rows, so that a worker's transformed input and
    /// products stay in its core's cache.
    static let winogradTiles = 200

    init(_ g: Conv2DGeometry, budget: Int, lowering: Lowering) {
        self.lowering = lowering
        switch lowering {
        case .winograd:
            let perImage = g.tileStride(tileRows: g.tileRows)
            if perImage <= Self.winogradTiles {
                images = max(1, min(g.batch, Self.winogradTiles / perImage))
                rows = g.outHeight
                maxColumns = images * perImage
            } else {  // blocks of tile rows, as even as they can be
                let blocks = (perImage + Self.winogradTiles - 1) / Self.winogradTiles
                let tileRows = (g.tileRows + blocks - 1) / blocks
                images = 1
                rows = 2 * tileRows
                maxColumns = g.tileStride(tileRows: tileRows)
            }
            loweredCount = winogradPositions * g.inChannels * maxColumns
        case .phases:
            rows = g.outHeight
            images = max(1, min(g.batch, budget / (g.patchSize * g.phasedPixels)))
            maxColumns = images * g.phasedPixels
            loweredCount = g.patchSize * maxColumns
        case .rowShift:
            let perOutputRow = g.shiftedPatchSize * g.outWidth
            let perImage = perOutputRow * g.paddedRows(outputRows: g.outHeight)
            if perImage <= budget {
                rows = g.outHeight
                let wanted = g.stacksImages ? (Self.minimumColumns + g.outPixels - 1) / g.outPixels : 1
                let fitting = g.stacksImages ? 1 + (budget - perImage) / (perOutputRow * g.rowPeriod) : 1
                images = max(1, min(g.batch, wanted, fitting))
            } else {
                images = 1
                rows = max(1, min(g.outHeight, budget / perOutputRow - g.dilationHeight * (g.kernelHeight - 1)))
            }
            let stackedRows = (images - 1) * g.rowPeriod
            loweredCount = perOutputRow * (stackedRows + g.paddedRows(outputRows: rows))
            maxColumns = (stackedRows + rows) * g.outWidth
        case .im2col(let splitRows):
            let perImage = g.patchSize * g.outPixels
            if perImage <= budget || !splitRows {
                images = max(1, min(g.batch, budget / max(1, perImage)))
                rows = g.outHeight
            } else {
                images = 1
                rows = max(1, min(g.outHeight, budget / (g.patchSize * g.outWidth)))
            }
            loweredCount = g.patchSize * images * rows * g.outWidth
            maxColumns = images * rows * g.outWidth
        }
        blocksPerImage = (g.outHeight + rows - 1) / rows
        items = images > 1 ? (g.batch + images - 1) / images : g.batch * blocksPerImage
    }

    /// The weight gradient sums its items in this many contiguous groups, each into its own
    /// partial sum, and adds the partials in group order: a fixed split, so that the result
    /// does not depend on the thread count or on which worker ran which group. (Four for
    /// Winograd, whose partials hold 16 values per kernel instead of 9.)
    var groups: Int {
        if case .winograd = lowering { return min(items, 4) }
        return min(items, 8)
    }

    /// The items of weight-gradient group `group`.
    func items(ofGroup group: Int) -> Range<Int> { items * group / groups..<items * (group + 1) / groups }

    /// The images and output rows of item `index`.
    func item(_ index: Int, _ g: Conv2DGeometry) -> (firstImage: Int, images: Int, rows: Range<Int>) {
        if images > 1 || blocksPerImage == 1 {
            let n0 = index * images
            return (n0, min(images, g.batch - n0), 0..<g.outHeight)
        }
        let r0 = (index % blocksPerImage) * rows
        return (index / blocksPerImage, 1, r0..<min(g.outHeight, r0 + rows))
    }
}

// MARK: - im2col / col2im (serial: each worker lowers its own item)

/// cols: (C*kH*kW, ldCols). Fills columns [0, images*rows.count*outW) with the patches of
/// output rows `rows` of `images` images at `input` (image-major, then row, then column).
func im2col(_ cols: UnsafeMutablePointer<Float>, ldCols: Int,
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
func col2im(_ dInput: UnsafeMutablePointer<Float>, _ dCols: UnsafePointer<Float>, ldCols: Int,
            images: Int, _ g: Conv2DGeometry, accumulate: Bool) {
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

/// Copies `rows` output rows of `width` values whose input rows lie one after the other at src
/// (stride 1, output as wide as the input, the same column shift) as one contiguous copy, then
/// zeroes the columns outside `valid`, which came from the neighbouring rows.
@inline(__always)
func copyContiguousRows(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows: Int, width: Int, valid v: Range<Int>) {
    let first = v.lowerBound, last = (rows - 1) * width + v.upperBound
    (dst + first).update(from: src + first, count: last - first)
    for r in 0..<rows {
        let d = dst + r * width
        for ow in 0..<v.lowerBound { d[ow] = 0 }
        for ow in v.upperBound..<width { d[ow] = 0 }
    }
}

/// dst[k] = src[2k] for k in 0..<count, four at a time (the even lanes of eight loaded values;
/// a load never reaches past src[2 * (count - 1)]).
@inline(__always)
private func gatherEven(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    var k = 0
    while k + 5 <= count {
        let pairs = UnsafeRawPointer(src + 2 * k).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(dst + k).storeBytes(of: pairs.evenHalf, as: SIMD4<Float>.self)
        k += 4
    }
    while k < count { dst[k] = src[2 * k]; k += 1 }
}

/// dst[2k] += src[k] for k in 0..<count, four at a time (the odd values in between get + 0;
/// no access reaches past dst[2 * (count - 1)]).
@inline(__always)
private func scatterAddEven(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    var k = 0
    while k + 5 <= count {
        let target = UnsafeMutableRawPointer(dst + 2 * k)
        var spread = SIMD8<Float>()
        spread.evenHalf = UnsafeRawPointer(src + k).loadUnaligned(as: SIMD4<Float>.self)
        target.storeBytes(of: target.loadUnaligned(as: SIMD8<Float>.self) + spread, as: SIMD8<Float>.self)
        k += 4
    }
    while k < count { dst[2 * k] += src[k]; k += 1 }
}

/// even[k] = src[2k] and odd[k] = src[2k + 1] for the k < pairs with 2k (and 2k + 1) < width,
/// four pairs at a time.
@inline(__always)
func deinterleave(_ even: UnsafeMutablePointer<Float>, _ odd: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>,
                  pairs: Int, width: Int) {
    var k = 0
    while 2 * k + 8 <= width && k + 4 <= pairs {
        let values = UnsafeRawPointer(src + 2 * k).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(even + k).storeBytes(of: values.evenHalf, as: SIMD4<Float>.self)
        UnsafeMutableRawPointer(odd + k).storeBytes(of: values.oddHalf, as: SIMD4<Float>.self)
        k += 4
    }
    while k < pairs && 2 * k < width {
        even[k] = src[2 * k]
        if 2 * k + 1 < width { odd[k] = src[2 * k + 1] }
        k += 1
    }
}

/// dst[w] = (accumulate ? dst[w] : 0) + add + (w even ? even : odd)[w / 2] for w in 0..<width,
/// with 0 for the values of pairs beyond `pairs`; eight at a time.
@inline(__always)
func interleave(_ dst: UnsafeMutablePointer<Float>, _ even: UnsafePointer<Float>, _ odd: UnsafePointer<Float>,
                pairs: Int, width: Int, add: Float = 0, accumulate: Bool) {
    var k = 0
    while 2 * k + 8 <= width && k + 4 <= pairs {
        var values = SIMD8<Float>()
        values.evenHalf = UnsafeRawPointer(even + k).loadUnaligned(as: SIMD4<Float>.self)
        values.oddHalf = UnsafeRawPointer(odd + k).loadUnaligned(as: SIMD4<Float>.self)
        values += add
        let target = UnsafeMutableRawPointer(dst + 2 * k)
        if accumulate { values += target.loadUnaligned(as: SIMD8<Float>.self) }
        target.storeBytes(of: values, as: SIMD8<Float>.self)
        k += 4
    }
    for w in (2 * k)..<width {
        let value = (w / 2 < pairs ? (w % 2 == 0 ? even : odd)[w / 2] : 0) + add
        dst[w] = accumulate ? dst[w] + value : value
    }
}

// MARK: - Convolution

private func checkConvShapes(_ g: Conv2DGeometry, input: Tensor, output: Tensor, weight: Tensor, bias: Tensor?,
                             outputName: String = "output") {
    checkShape(input.shape == g.inputShape, "conv2d: input shape \(input.shape) does not match the geometry's input shape \(g.inputShape)")
    checkShape(output.shape == g.outputShape, "conv2d: \(outputName) shape \(output.shape) does not match the expected shape \(g.outputShape)")
    checkShape(weight.shape == g.weightShape, "conv2d: weight shape \(weight.shape) does not match the expected shape \(g.weightShape)")
    if let bias {
        checkShape(bias.shape == [g.outChannels], "conv2d: bias shape \(bias.shape) does not match the expected shape \([g.outChannels])")
    }
}

/// output (N, outC, outH, outW) = conv(input (N, C, H, W), weight (outC, C, kH, kW)) + bias (outC).
///
/// Each worker takes whole work items (see `ConvolutionPlan`), lowers an item into its own
/// im2col columns and multiplies them by the weight with a single-threaded sgemm.
public func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor?,
                          geometry g: Conv2DGeometry, workspace: Workspace) {
    checkConvShapes(g, input: input, output: output, weight: weight, bias: bias)
    convolve(output.data, input.data, weight.data, bias?.data, g, workspace, accumulate: false)
}

/// The forward convolution on raw buffers (shapes already checked); `accumulate` adds the
/// result to y instead of overwriting it.
private func convolve(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                      _ bias: UnsafePointer<Float>?, _ g: Conv2DGeometry, _ workspace: Workspace, accumulate: Bool) {
    let plan = ConvolutionPlan(g, budget: workspace.columnBudget)
    switch plan.lowering {
    case .winograd: convolveByWinograd(y, x, w, bias, g, plan, workspace, accumulate: accumulate)
    case .rowShift: convolveByRowShift(y, x, w, bias, g, plan, workspace, accumulate: accumulate)
    case .phases: convolveByPhases(y, x, w, bias, g, plan, workspace, accumulate: accumulate)
    case .im2col: convolveByIm2col(y, x, w, bias, g, plan, workspace, accumulate: accumulate)
    }
}

/// Per item: kH GEMMs, kernel row i times the row-shifted matrix i*dH rows on, straight into
/// the output for a single image, else through a staging buffer.
private func convolveByRowShift(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                                _ bias: UnsafePointer<Float>?, _ g: Conv2DGeometry, _ plan: ConvolutionPlan,
                                _ workspace: Workspace, accumulate: Bool) {
    let KS = g.shiftedPatchSize, P = g.outPixels, OC = g.outChannels, OW = g.outWidth
    let workers = Parallel.workers(for: plan.items)
    let lowered = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)
    let staging = workspace.buffers(.staging, workers: workers, count: plan.images > 1 ? OC * plan.maxColumns : 0)
    let kernelRows = workspace.buffers(.kernelRows, workers: 1, count: g.weightShape.reduce(1, *))[0]
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
            scatterChunk(y + n0 * OC * P, out, ld: columns, imageStride: g.rowPeriod * OW, images: nb,
                         channels: OC, pixels: P, bias: bias, accumulate: accumulate)
        } else if let bias {
            for o in 0..<OC { let v = bias[o]; for p in 0..<columns { out[o * P + p] += v } }
        }
    }
}

/// Lowers work item (images firstImage..<firstImage+images, output rows `rows`) into e
/// (C*kW, ld): returns e and ld, image b's rows starting at column b * rowPeriod * outW.
private func lowerItem(_ e: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, firstImage n0: Int, images nb: Int,
                       rows: Range<Int>, _ g: Conv2DGeometry) -> (UnsafeMutablePointer<Float>, ld: Int) {
    let ld = ((nb - 1) * g.rowPeriod + g.paddedRows(outputRows: rows.count)) * g.outWidth
    for b in 0..<nb {
        lowerRows(e + b * g.rowPeriod * g.outWidth, ld: ld, x + (n0 + b) * g.inChannels * g.inPixels, rows: rows, g)
    }
    return (e, ld)
}

/// y (images, C, P) = (accumulate ? y : 0) + s + bias, s (C, ld) holding image b's channel c
/// at s + c * ld + b * imageStride, in rows of `width` values `pitch` apart (default: the whole
/// plane as one row).
func scatterChunk(_ y: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, ld: Int, imageStride: Int,
                  images: Int, channels: Int, pixels P: Int, width: Int? = nil, pitch: Int? = nil,
                  bias: UnsafePointer<Float>?, accumulate: Bool) {
    let width = width ?? P, pitch = pitch ?? width
    for b in 0..<images {
        for o in 0..<channels {
            let v = bias?[o] ?? 0
            for row in 0..<P / width {
                let src = s + o * ld + b * imageStride + row * pitch, dst = y + (b * channels + o) * P + row * width
                if accumulate {
                    for p in 0..<width { dst[p] += src[p] + v }
                } else {
                    for p in 0..<width { dst[p] = src[p] + v }
                }
            }
        }
    }
}

/// Per item: im2col columns times the weight in one GEMM (through a staging buffer when the
/// item holds several images).
private func convolveByIm2col(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                              _ bias: UnsafePointer<Float>?, _ g: Conv2DGeometry, _ plan: ConvolutionPlan,
                              _ workspace: Workspace, accumulate: Bool) {
    let K = g.patchSize, P = g.outPixels, OC = g.outChannels, OW = g.outWidth
    let workers = Parallel.workers(for: plan.items)
    let cols = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)  // (K, columns)
    let staging = workspace.buffers(.staging, workers: workers, count: plan.images > 1 ? OC * plan.maxColumns : 0)  // (OC, columns)
    func forwardItem(_ worker: Int, _ index: Int) {
        let (n0, nb, rows) = plan.item(index, g)
        let ld = nb * rows.count * OW
        let yImage = y + n0 * OC * P
        im2col(cols[worker], ldCols: ld, x + n0 * g.inChannels * g.inPixels, images: nb, rows: rows, g)
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
        scatterChunk(yImage, s, ld: ld, imageStride: P, images: nb, channels: OC, pixels: P, bias: bias, accumulate: accumulate)
    }
    Parallel.forEachClaimed(plan.items, workers: workers, forwardItem)
}

/// Gradients of `conv2dForward` from dOutput (N, outC, outH, outW): dInput (N, C, H, W),
/// dWeight (outC, C, kH, kW) and dBias (outC) are overwritten, or added to when
/// `accumulateInput` (for dInput) or `accumulate` (for dWeight, dBias) is true. Pass nil for
/// gradients that are not needed.
///
/// The weight gradient is summed in a fixed split of the items into groups whose partial sums
/// are added in order, so it does not depend on the thread count. For stride 1 the input gradient is
/// the forward convolution of dOutput with the flipped, transposed kernel; otherwise it is a
/// GEMM into im2col columns followed by col2im.
public func conv2dBackward(dInput: Tensor?, dWeight: Tensor?, dBias: Tensor?,
                           dOutput: Tensor, input: Tensor, weight: Tensor,
                           geometry g: Conv2DGeometry, accumulate: Bool = false, accumulateInput: Bool = false,
                           workspace: Workspace) {
    checkConvShapes(g, input: input, output: dOutput, weight: weight, bias: dBias, outputName: "dOutput")
    if let dInput { checkShape(dInput.shape == g.inputShape, "conv2d: dInput shape \(dInput.shape) does not match the input shape \(g.inputShape)") }
    if let dWeight { checkShape(dWeight.shape == g.weightShape, "conv2d: dWeight shape \(dWeight.shape) does not match the weight shape \(g.weightShape)") }
    if let dBias { channelSums(dBias.data, dOutput.data, images: g.batch, channels: g.outChannels, pixels: g.outPixels, accumulate: accumulate) }
    if let dWeight { convWeightGradient(dWeight.data, dOutput.data, input.data, g, accumulate, workspace) }
    if let dInput {
        if let transposed = g.transposedForInputGradient, g.inChannels >= 8 {
            let flipped = workspace.buffers(.flippedWeight, workers: 1, count: weight.count)[0]
            flipTransposed(flipped, weight.data, g)
            convolve(dInput.data, dOutput.data, flipped, nil, transposed, workspace, accumulate: accumulateInput)
        } else if g.lowersByPhases {
            convInputGradientByPhases(dInput.data, dOutput.data, weight.data, g, workspace, accumulate: accumulateInput)
        } else {
            convInputGradientByCol2im(dInput.data, dOutput.data, weight.data, g, workspace, accumulate: accumulateInput)
        }
    }
}

extension Conv2DGeometry {
    /// For stride 1: the convolution of dOutput whose result is dInput (flipped, transposed
    /// kernel; padding dilation*(k-1) - padding). Nil when the stride is not 1 or the padding
    /// exceeds the kernel's dilated extent. (Used when the input has at least 8 channels: with
    /// fewer, its GEMM has too few rows to be efficient and col2im is faster.)
    var transposedForInputGradient: Conv2DGeometry? {
        let padH = dilationHeight * (kernelHeight - 1) - padHeight
        let padW = dilationWidth * (kernelWidth - 1) - padWidth
        guard strideHeight == 1, strideWidth == 1, padH >= 0, padW >= 0 else { return nil }
        return Conv2DGeometry(input: outputShape, outChannels: inChannels, kernel: (kernelHeight, kernelWidth),
                              padding: (padH, padW), dilation: (dilationHeight, dilationWidth))
    }
}

/// flipped (C, outC, kH, kW)[c, o, i, j] = weight (outC, C, kH, kW)[o, c, kH-1-i, kW-1-j].
private func flipTransposed(_ flipped: UnsafeMutablePointer<Float>, _ weight: UnsafePointer<Float>, _ g: Conv2DGeometry) {
    let C = g.inChannels, OC = g.outChannels, kH = g.kernelHeight, kW = g.kernelWidth
    for o in 0..<OC {
        for c in 0..<C {
            for i in 0..<kH {
                for j in 0..<kW {
                    flipped[((c * OC + o) * kH + i) * kW + j] = weight[((o * C + c) * kH + (kH - 1 - i)) * kW + (kW - 1 - j)]
                }
            }
        }
    }
}

/// dst (C, ld) = src (images, C, P): a chunk of NCHW images as one matrix for a GEMM, image b's
/// channel c at dst + c * ld + b * imageStride, in rows of `width` values `pitch` apart with
/// zeros between (default: the whole plane as one row, images P apart).
func gatherChannelMajor(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, ld: Int,
                        images: Int, channels: Int, pixels P: Int, width: Int? = nil, pitch: Int? = nil) {
    let width = width ?? P, pitch = pitch ?? width, rows = P / width
    for b in 0..<images {
        for c in 0..<channels {
            for row in 0..<rows {
                let target = dst + c * ld + b * rows * pitch + row * pitch
                target.update(from: src + (b * channels + c) * P + row * width, count: width)
                (target + width).update(repeating: 0, count: pitch - width)
            }
        }
    }
}

/// dW (outC, C, kH, kW): the sum over work items, accumulated per group of items
/// (`ConvolutionPlan.groups`) and then over the groups in order.
private func convWeightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                _ g: Conv2DGeometry, _ accumulate: Bool, _ workspace: Workspace) {
    let plan = ConvolutionPlan(g, budget: workspace.columnBudget)
    switch plan.lowering {
    case .winograd: convWeightGradientByWinograd(dW, dy, x, g, plan, accumulate, workspace)
    case .rowShift: convWeightGradientByRowShift(dW, dy, x, g, plan, accumulate, workspace)
    case .phases: convWeightGradientByPhases(dW, dy, x, g, plan, accumulate, workspace)
    case .im2col: convWeightGradientByIm2col(dW, dy, x, g, plan, accumulate, workspace)
    }
}

/// dW in kernel-row blocks (kH, outC, C*kW) = sum over items of D (kH*outC, ld) x E^T, one GEMM
/// per item: row (i, o) of D holds dY of channel o shifted i*dH rows on (zeros elsewhere), so
/// block i is dY times E viewed i*dH rows on.
private func convWeightGradientByRowShift(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                                          _ x: UnsafePointer<Float>, _ g: Conv2DGeometry, _ plan: ConvolutionPlan,
                                          _ accumulate: Bool, _ workspace: Workspace) {
    let KS = g.shiftedPatchSize, P = g.outPixels, OC = g.outChannels, OW = g.outWidth, kH = g.kernelHeight
    let workers = Parallel.workers(for: plan.items)
    let lowered = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)
    let shifted = workspace.buffers(.staging, workers: workers, count: kH * OC * plan.loweredCount / KS)  // D
    let partials = workspace.buffers(.weightGradient, workers: plan.groups, count: g.weightShape.reduce(1, *))
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

/// dW (outC, K) = sum over items of dY_item (outC, columns) * cols_item^T.
private func convWeightGradientByIm2col(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                                        _ x: UnsafePointer<Float>, _ g: Conv2DGeometry, _ plan: ConvolutionPlan,
                                        _ accumulate: Bool, _ workspace: Workspace) {
    let K = g.patchSize, P = g.outPixels, OC = g.outChannels, OW = g.outWidth
    let workers = Parallel.workers(for: plan.items)
    let cols = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)  // (K, columns)
    let staging = workspace.buffers(.staging, workers: workers, count: plan.images > 1 ? OC * plan.maxColumns : 0)  // (OC, columns)
    let partials = workspace.buffers(.weightGradient, workers: plan.groups, count: OC * K)  // (OC, K)
    func weightGradientItem(_ worker: Int, _ group: Int, _ index: Int, first: Bool) {
        let (n0, nb, rows) = plan.item(index, g)
        let ld = nb * rows.count * OW
        let dyImage = dy + n0 * OC * P
        im2col(cols[worker], ldCols: ld, x + n0 * g.inChannels * g.inPixels, images: nb, rows: rows, g)
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
    sumPartials(dW, partials.prefix(plan.groups), count: OC * K, accumulate: accumulate)
}

/// dW (count) = (accumulate ? dW : 0) + the sum, in order, of `partials`.
func sumPartials(_ dW: UnsafeMutablePointer<Float>, _ partials: ArraySlice<UnsafeMutablePointer<Float>>,
                 count: Int, accumulate: Bool) {
    forBlocks(count) { r in
        for i in r {
            var s: Float = accumulate ? dW[i] : 0
            for p in partials { s += p[i] }
            dW[i] = s
        }
    }
}

/// dInput by dCols (K, columns) = W^T * dY_item, then col2im; items are whole images, so no
/// two workers add into the same input image.
private func convInputGradientByCol2im(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>,
                                       _ w: UnsafePointer<Float>, _ g: Conv2DGeometry, _ workspace: Workspace, accumulate: Bool) {
    let K = g.patchSize, P = g.outPixels, OC = g.outChannels
    let plan = ConvolutionPlan(g, budget: workspace.columnBudget, lowering: .im2col(splitRows: false))
    let workers = Parallel.workers(for: plan.items)
    let cols = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)  // (K, columns)
    let staging = workspace.buffers(.staging, workers: workers, count: plan.images > 1 ? OC * plan.maxColumns : 0)  // (OC, columns)
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
        col2im(dx + n0 * g.inChannels * g.inPixels, cols[worker], ldCols: ld, images: nb, g, accumulate: accumulate)
    }
    Parallel.forEachClaimed(plan.items, workers: workers, inputGradientItem)
}

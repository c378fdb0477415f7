// Dilated 3x3 convolutions as Winograd convolutions of stacked phase planes.
//
// With stride 1, a 3x3 kernel dilated by d and padding d, output pixel (d*u + a, d*v + b)
// reads only input pixels of its own phase (a, b): (d*(u + i - 1) + a, d*(v + j - 1) + b) for
// tap (i, j). On the phase plane P_ab[u][v] = x[d*u + a][d*v + b] the dilated convolution is
// an undilated 3x3 convolution with padding 1, which Winograd F(2x2, 3x3) computes at 2.25x
// fewer multiplications. One image's d*d planes (Hp = ceil(H/d) rows of Wp = ceil(W/d)
// columns each) are stacked into one tall image with a zero row between consecutive planes:
// that row is the bottom padding of one plane and the top padding of the next, so a single
// Winograd convolution of the stacked images computes every phase, and the outputs of the
// separator rows are junk, dropped. Plane positions past the image (d not dividing H or W)
// hold zeros, as the original padding does.
//
// The batch is stacked in chunks of images (`PhaseStackLowering.tilesPerChunk` tiles each), so
// the stacked copies stay small; the chunk size depends on the geometry alone, so results do
// not depend on the thread count.

extension Conv2DGeometry {
    /// Rows of a phase plane: ceil(H / d).
    var phasePlaneRows: Int { (inHeight + dilationHeight - 1) / dilationHeight }
    /// Columns of a phase plane: ceil(W / d).
    var phasePlaneColumns: Int { (inWidth + dilationWidth - 1) / dilationWidth }
    /// Rows of a stacked image: d*d planes with a zero row between consecutive ones.
    var stackedHeight: Int { dilationHeight * dilationWidth * (phasePlaneRows + 1) - 1 }
    /// Elements of one channel of a stacked image.
    var stackedPixels: Int { stackedHeight * phasePlaneColumns }

    /// The fraction of the stacked convolution's outputs (2x2 tiles) that are the convolution's:
    /// the rest are separator rows and plane positions past the image or its last tile.
    var stackedOutputsWanted: Double {
        let stacked = stackedGeometry(images: 1)
        return Double(outPixels) / Double(4 * stacked.tileRows * stacked.tileColumns)
    }

    /// The undilated convolution of `images` stacked images (its input and output have the
    /// same shape per channel: stackedHeight x phasePlaneColumns).
    func stackedGeometry(images: Int) -> Conv2DGeometry {
        Conv2DGeometry(input: [images, inChannels, stackedHeight, phasePlaneColumns], outChannels: outChannels, kernel: 3, padding: 1)
    }
}

/// stacked (planes, stackedHeight, Wp): for each of `planes` H x W planes of `source`, its d*d
/// phase planes, phase (a, b) at rows (a*d + b) * (Hp + 1) ..< + Hp, zeros elsewhere.
func stackPhases(_ stacked: UnsafeMutablePointer<Float>, _ source: UnsafePointer<Float>, planes: Int, _ g: Conv2DGeometry) {
    let H = g.inHeight, W = g.inWidth, d = g.dilationHeight, Hp = g.phasePlaneRows, Wp = g.phasePlaneColumns
    Parallel.forRanges(planes) { r in
        for p in r {
            let dst = stacked + p * g.stackedPixels, src = source + p * H * W
            for a in 0..<d {
                let rows = (H - a + d - 1) / d  // plane rows inside the image
                for b in 0..<d {
                    let columns = (W - b + d - 1) / d  // plane columns inside the image
                    let plane = dst + (a * d + b) * (Hp + 1) * Wp
                    for u in 0..<rows {
                        let row = plane + u * Wp, input = src + (d * u + a) * W + b
                        for v in 0..<columns { row[v] = input[d * v] }
                        (row + columns).update(repeating: 0, count: Wp - columns)
                    }
                    // the rows past the image and the separator (none after the last plane)
                    let last = a == d - 1 && b == d - 1
                    (plane + rows * Wp).update(repeating: 0, count: (Hp - rows + (last ? 0 : 1)) * Wp)
                }
            }
        }
    }
}

/// The inverse of `stackPhases` for `planes` H x W output planes: target = (accumulate ?
/// target : 0) + the stacked values at their pixels; separator rows and plane positions past
/// the image are dropped.
func unstackPhases(_ target: UnsafeMutablePointer<Float>, _ stacked: UnsafePointer<Float>, accumulate: Bool, planes: Int,
                   _ g: Conv2DGeometry) {
    let H = g.inHeight, W = g.inWidth, d = g.dilationHeight, Hp = g.phasePlaneRows, Wp = g.phasePlaneColumns
    Parallel.forRanges(planes) { r in
        for p in r {
            let src = stacked + p * g.stackedPixels, dst = target + p * H * W
            for a in 0..<d {
                let rows = (H - a + d - 1) / d
                for b in 0..<d {
                    let columns = (W - b + d - 1) / d
                    let plane = src + (a * d + b) * (Hp + 1) * Wp
                    for u in 0..<rows {
                        let row = plane + u * Wp, output = dst + (d * u + a) * W + b
                        if accumulate {
                            for v in 0..<columns { output[d * v] += row[v] }
                        } else {
                            for v in 0..<columns { output[d * v] = row[v] }
                        }
                    }
                }
            }
        }
    }
}

/// Dilated 3x3 convolutions as Winograd convolutions of stacked phase planes. Its input
/// gradient is the forward pass of a transposed geometry of the same kind wherever it applies
/// (lowered as that geometry's choice); col2im's were it not.
enum PhaseStackLowering: ConvolutionLowering {
    static let name = "phase-stack"
    static let inputGradientFallback: (any ConvolutionLowering.Type)? = Im2colLowering.self

    /// A 3x3 kernel, stride 1, the same dilation d >= 2 both ways with padding d, and the
    /// stacked convolution's Winograd conditions (16 or more input and output channels).
    static func applies(to g: Conv2DGeometry) -> Bool {
        g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideHeight == 1 && g.strideWidth == 1
            && g.dilationHeight >= 2 && g.dilationWidth == g.dilationHeight
            && g.padHeight == g.dilationHeight && g.padWidth == g.dilationWidth
            && g.inChannels >= 16 && g.outChannels >= 16
    }

    /// Always for the weight gradient; for the forward pass where most of the stacked tiles'
    /// outputs are wanted (else row shifts are faster).
    ///
    /// Measured on 24x24 maps, 96 channels, as a training rank runs them (a Zen 4, AMD EPYC
    /// family 25 model 17; one thread, 8 images, `abn bench kernels --network deeplab`),
    /// dilation 2 and 4 (92% and 86% of the outputs wanted) ran at 90-130% of sgemm against
    /// row shifts' 64-92% in every direction;
    /// dilation 8 and 12 (56%, 67%) ran forward at 55-63% against 78-90%, but their weight
    /// gradients at 50-56% against 30-37%. (With 2 threads at 16 images the forward pass and
    /// input gradient were even, the weight gradients still ahead.)
    static func isPreferred(for direction: ConvolutionDirection, of g: Conv2DGeometry) -> Bool {
        direction == .weightGradient || g.stackedOutputsWanted >= 0.75
    }

    /// Chunks hold about this many Winograd tiles: enough items of
    /// `WinogradLowering.tilesPerItem` for the workers, few enough images to keep the stacked
    /// copies small.
    static let tilesPerChunk = 800

    /// Chunks of whole images (the chunk size depends on the geometry alone).
    static func plan(for direction: ConvolutionDirection, of g: Conv2DGeometry, budget: Int) -> ConvolutionPlan {
        let stacked = g.stackedGeometry(images: 1)
        let perImage = stacked.tileStride(tileRows: stacked.tileRows)
        let images = max(1, min(g.batch, tilesPerChunk / perImage))
        return ConvolutionPlan(self, g, images: images, rows: g.outHeight, maxColumns: images * perImage,
                               loweredCount: images * g.inChannels * g.stackedPixels)
    }

    /// Per chunk of images: stack the input's phases, convolve the stacked images (Winograd),
    /// unstack into y. (The input gradient is the forward convolution of dY with the flipped
    /// kernel, of the same dilation and padding: it comes here too.)
    static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                        _ bias: UnsafePointer<Float>?, accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .forward, of: g, budget: workspace.columnBudget)
        let C = g.inChannels, OC = g.outChannels
        let stackedInput = workspace.buffers(.stackedInput, workers: 1, count: plan.loweredCount)[0]
        let stackedOutput = workspace.buffers(.stackedOutput, workers: 1, count: plan.images * OC * g.stackedPixels)[0]
        for index in 0..<plan.items {
            let (n0, nb, _) = plan.item(index, g)
            stackPhases(stackedInput, x + n0 * C * g.inPixels, planes: nb * C, g)
            convolve(stackedOutput, stackedInput, w, bias, accumulate: false, workspace, g.stackedGeometry(images: nb))
            unstackPhases(y + n0 * OC * g.outPixels, stackedOutput, accumulate: accumulate, planes: nb * OC, g)
        }
    }

    /// dW: per chunk of images, the stacked convolution's weight gradient from the stacked input
    /// and output gradient (zero at separators, as the junk outputs must not contribute), added
    /// chunk after chunk.
    static func weightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                               accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .weightGradient, of: g, budget: workspace.columnBudget)
        let C = g.inChannels, OC = g.outChannels
        guard plan.items > 0 else {  // an empty batch
            if !accumulate { dW.update(repeating: 0, count: OC * g.patchSize) }
            return
        }
        let stackedInput = workspace.buffers(.stackedInput, workers: 1, count: plan.loweredCount)[0]
        let stackedGradient = workspace.buffers(.stackedOutput, workers: 1, count: plan.images * OC * g.stackedPixels)[0]
        for index in 0..<plan.items {
            let (n0, nb, _) = plan.item(index, g)
            stackPhases(stackedInput, x + n0 * C * g.inPixels, planes: nb * C, g)
            stackPhases(stackedGradient, dy + n0 * OC * g.outPixels, planes: nb * OC, g)
            convWeightGradient(dW, stackedGradient, stackedInput, accumulate: accumulate || index > 0, workspace, g.stackedGeometry(images: nb))
        }
    }
}

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

    /// The same convolution over another batch size.
    public func withBatch(_ n: Int) -> Conv2DGeometry {
        Conv2DGeometry(input: [n, inChannels, inHeight, inWidth], outChannels: outChannels,
                       kernel: (kernelHeight, kernelWidth), stride: (strideHeight, strideWidth),
                       padding: (padHeight, padWidth), dilation: (dilationHeight, dilationWidth))
    }

    public var description: String {
        "\(inChannels)->\(outChannels) \(kernelHeight)x\(kernelWidth) s\(strideHeight) p\(padHeight) d\(dilationHeight) on \(inHeight)x\(inWidth)"
    }

    /// Images per chunk so that the im2col columns stay within `budget` elements.
    func imagesPerChunk(budget: Int) -> Int {
        max(1, min(batch, budget / max(1, patchSize * outPixels)))
    }

    /// For kernel column `j`: the output columns whose input column lies inside the image.
    func validOutputColumns(kernelColumn j: Int) -> Range<Int> {
        let offset = j * dilationWidth - padWidth  // iw = ow * stride + offset
        let lo = offset >= 0 ? 0 : (-offset + strideWidth - 1) / strideWidth
        let hi = inWidth - 1 - offset < 0 ? 0 : min(outWidth, (inWidth - 1 - offset) / strideWidth + 1)
        return lo..<max(lo, hi)
    }
}

// MARK: - im2col / col2im (serial: each worker lowers its own chunk of images)

/// cols: (C*kH*kW, ldCols); fills columns [0, images*outPixels) from `images` images at `input`.
func im2col(_ cols: UnsafeMutablePointer<Float>, ldCols: Int,
            _ input: UnsafePointer<Float>, images: Int, _ g: Conv2DGeometry) {
    let kH = g.kernelHeight, kW = g.kernelWidth, H = g.inHeight, W = g.inWidth
    let OH = g.outHeight, OW = g.outWidth, P = g.outPixels, C = g.inChannels
    let sh = g.strideHeight, sw = g.strideWidth
    for j in 0..<kW {
        let v = g.validOutputColumns(kernelColumn: j)
        let colOffset = j * g.dilationWidth - g.padWidth
        for b in 0..<images {
            for c in 0..<C {
                let plane = input + (b * C + c) * H * W
                for i in 0..<kH {
                    let row = cols + ((c * kH + i) * kW + j) * ldCols + b * P
                    let rowOffset = i * g.dilationHeight - g.padHeight
                    for oh in 0..<OH {
                        let dst = row + oh * OW
                        let ih = oh * sh + rowOffset
                        if ih < 0 || ih >= H {
                            for ow in 0..<OW { dst[ow] = 0 }
                            continue
                        }
                        let src = plane + ih * W + colOffset
                        for ow in 0..<v.lowerBound { dst[ow] = 0 }
                        if sw == 1 {
                            for ow in v { dst[ow] = src[ow] }
                        } else {
                            for ow in v { dst[ow] = src[ow * sw] }
                        }
                        for ow in v.upperBound..<OW { dst[ow] = 0 }
                    }
                }
            }
        }
    }
}

/// Overwrites the `images` input-gradient images at `dInput` with the sum of `dCols`
/// (C*kH*kW, ldCols) over the patches each input pixel belongs to.
func col2im(_ dInput: UnsafeMutablePointer<Float>, _ dCols: UnsafePointer<Float>, ldCols: Int,
            images: Int, _ g: Conv2DGeometry) {
    let kH = g.kernelHeight, kW = g.kernelWidth, H = g.inHeight, W = g.inWidth
    let OH = g.outHeight, OW = g.outWidth, P = g.outPixels, C = g.inChannels
    let sh = g.strideHeight, sw = g.strideWidth
    dInput.update(repeating: 0, count: images * C * H * W)
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
                        if sw == 1 {
                            for ow in v { dst[ow] += src[ow] }
                        } else {
                            for ow in v { dst[ow * sw] += src[ow] }
                        }
                    }
                }
            }
        }
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
/// The batch is cut into chunks of images whose im2col columns fit `workspace.columnBudget`;
/// each worker lowers a chunk into its own columns and multiplies them by the weight with a
/// single-threaded sgemm, then writes the chunk's output in NCHW order.
public func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor?,
                          geometry g: Conv2DGeometry, workspace: Workspace) {
    checkConvShapes(g, input: input, output: output, weight: weight, bias: bias)
    let K = g.patchSize, P = g.outPixels, OC = g.outChannels
    let chunk = g.imagesPerChunk(budget: workspace.columnBudget)
    let chunks = (g.batch + chunk - 1) / chunk
    let workers = Parallel.workers(for: chunks)
    let cols = workspace.buffers(.columns, workers: workers, count: K * chunk * P)  // (K, chunk*P) each
    let staging = workspace.buffers(.staging, workers: workers, count: chunk > 1 ? OC * chunk * P : 0)  // (OC, chunk*P)
    let x = input.data, y = output.data, w = weight.data, biasData = bias?.data
    func forwardChunk(_ worker: Int, _ index: Int) {
        let n0 = index * chunk, nb = min(chunk, g.batch - n0)
        let ld = nb * P
        let yChunk = y + n0 * OC * P
        im2col(cols[worker], ldCols: ld, x + n0 * g.inChannels * g.inPixels, images: nb, g)
        let gemmOut = nb == 1 ? yChunk : staging[worker]
        BLAS.sgemm(m: OC, n: ld, k: K, a: w, lda: K, b: cols[worker], ldb: ld, c: gemmOut, ldc: ld)
        for b in 0..<nb {  // (OC, nb*P) -> (nb, OC, P), adding the bias
            for o in 0..<OC {
                let src = gemmOut + o * ld + b * P
                let dst = yChunk + (b * OC + o) * P
                let v = biasData?[o] ?? 0
                if nb > 1 || biasData != nil {
                    for p in 0..<P { dst[p] = src[p] + v }
                }
            }
        }
    }
    Parallel.forWorkers(chunks) { worker, indices in
        for index in indices { forwardChunk(worker, index) }
    }
}

/// Gradients of `conv2dForward` from dOutput (N, outC, outH, outW): dInput (N, C, H, W) is
/// overwritten; dWeight (outC, C, kH, kW) and dBias (outC) are overwritten, or added to when
/// `accumulate` is true. Pass nil for gradients that are not needed.
///
/// Chunks as in the forward pass; each worker sums its weight gradient in its own buffer and
/// the buffers are added at the end.
public func conv2dBackward(dInput: Tensor?, dWeight: Tensor?, dBias: Tensor?,
                           dOutput: Tensor, input: Tensor, weight: Tensor,
                           geometry g: Conv2DGeometry, accumulate: Bool = false, workspace: Workspace) {
    checkConvShapes(g, input: input, output: dOutput, weight: weight, bias: dBias, outputName: "dOutput")
    if let dInput { checkShape(dInput.shape == g.inputShape, "conv2d: dInput shape \(dInput.shape) does not match the input shape \(g.inputShape)") }
    if let dWeight { checkShape(dWeight.shape == g.weightShape, "conv2d: dWeight shape \(dWeight.shape) does not match the weight shape \(g.weightShape)") }
    let K = g.patchSize, P = g.outPixels, OC = g.outChannels
    if let dBias { channelSums(dBias.data, dOutput.data, images: g.batch, channels: OC, pixels: P, accumulate: accumulate) }
    guard dInput != nil || dWeight != nil else { return }
    let chunk = g.imagesPerChunk(budget: workspace.columnBudget)
    let chunks = (g.batch + chunk - 1) / chunk
    let workers = Parallel.workers(for: chunks)
    let cols = workspace.buffers(.columns, workers: workers, count: K * chunk * P)  // (K, chunk*P), reused for dCols
    let staging = workspace.buffers(.staging, workers: workers, count: chunk > 1 ? OC * chunk * P : 0)  // (OC, chunk*P)
    let partials = workspace.buffers(.weightGradient, workers: workers, count: dWeight == nil ? 0 : OC * K)  // (OC, K)
    if dWeight != nil {
        for p in partials { p.update(repeating: 0, count: OC * K) }
    }
    let x = input.data, w = weight.data, dy = dOutput.data, dx = dInput?.data
    let wantWeightGradient = dWeight != nil
    func backwardChunk(_ worker: Int, _ index: Int) {
        let n0 = index * chunk, nb = min(chunk, g.batch - n0)
        let ld = nb * P
        let dyChunk = dy + n0 * OC * P
        let dyMatrix: UnsafeMutablePointer<Float>  // (OC, nb*P)
        if nb == 1 {
            dyMatrix = dyChunk
        } else {
            dyMatrix = staging[worker]
            for b in 0..<nb {
                for o in 0..<OC {
                    let src = dyChunk + (b * OC + o) * P, dst = dyMatrix + o * ld + b * P
                    for p in 0..<P { dst[p] = src[p] }
                }
            }
        }
        let inputOffset = n0 * g.inChannels * g.inPixels
        if wantWeightGradient {
            im2col(cols[worker], ldCols: ld, x + inputOffset, images: nb, g)
            BLAS.sgemm(transB: true, m: OC, n: K, k: ld, a: dyMatrix, lda: ld, b: cols[worker], ldb: ld,
                       beta: 1, c: partials[worker], ldc: K)
        }
        if let dx {
            BLAS.sgemm(transA: true, m: K, n: ld, k: OC, a: w, lda: K, b: dyMatrix, ldb: ld, c: cols[worker], ldc: ld)
            col2im(dx + inputOffset, cols[worker], ldCols: ld, images: nb, g)
        }
    }
    Parallel.forWorkers(chunks) { worker, indices in
        for index in indices { backwardChunk(worker, index) }
    }
    if let dWeight {
        let out = dWeight.data
        forBlocks(OC * K) { r in
            for i in r {
                var s: Float = accumulate ? out[i] : 0
                for p in partials { s += p[i] }
                out[i] = s
            }
        }
    }
}

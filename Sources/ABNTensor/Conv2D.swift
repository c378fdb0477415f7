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

    /// How the forward pass is lowered to GEMMs, for reports: "direct", "winograd",
    /// "phase-stack", "row-shift", "phases" or "im2col".
    public var lowering: String { ConvolutionPlan.lowering(of: self).name }
    /// How the weight gradient is lowered, named like `lowering`.
    public var weightGradientLowering: String { ConvolutionPlan.lowering(of: self, weightGradient: true).name }
    /// How the input gradient is computed: as the forward convolution of the transposed
    /// geometry (its lowering's name), or by "phases" or "col2im".
    public var inputGradientLowering: String {
        if let transposed = transposedForInputGradient, inChannels >= 8 { return transposed.lowering }
        return lowersByPhases ? "phases" : "col2im"
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
func convolve(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                      _ bias: UnsafePointer<Float>?, _ g: Conv2DGeometry, _ workspace: Workspace, accumulate: Bool) {
    let plan = ConvolutionPlan(g, budget: workspace.columnBudget)
    switch plan.lowering {
    case .winograd: convolveByWinograd(y, x, w, bias, g, plan, workspace, accumulate: accumulate)
    case .phaseStack: convolveByPhaseStack(y, x, w, bias, g, plan, workspace, accumulate: accumulate)
    case .rowShift: convolveByRowShift(y, x, w, bias, g, plan, workspace, accumulate: accumulate)
    case .phases: convolveByPhases(y, x, w, bias, g, plan, workspace, accumulate: accumulate)
    case .im2col: convolveByIm2col(y, x, w, bias, g, plan, workspace, accumulate: accumulate)
    case .direct: convolveDirectly(y, x, w, bias, g, plan, workspace, accumulate: accumulate)
    }
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
        if let transposed = g.transposedForInputGradient, g.inChannels >= 8 {  // as inputGradientLowering says
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

/// dW (outC, C, kH, kW): the sum over work items, accumulated per group of items
/// (`ConvolutionPlan.groups`) and then over the groups in order.
func convWeightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                _ g: Conv2DGeometry, _ accumulate: Bool, _ workspace: Workspace) {
    let plan = ConvolutionPlan(g, budget: workspace.columnBudget, weightGradient: true)
    switch plan.lowering {
    case .winograd: convWeightGradientByWinograd(dW, dy, x, g, plan, accumulate, workspace)
    case .phaseStack: convWeightGradientByPhaseStack(dW, dy, x, g, plan, accumulate, workspace)
    case .rowShift: convWeightGradientByRowShift(dW, dy, x, g, plan, accumulate, workspace)
    case .phases: convWeightGradientByPhases(dW, dy, x, g, plan, accumulate, workspace)
    case .im2col: convWeightGradientByIm2col(dW, dy, x, g, plan, accumulate, workspace)
    case .direct: convWeightGradientDirectly(dW, dy, x, g, plan, accumulate, workspace)
    }
}

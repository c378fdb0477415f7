// The convolution's entry points: shapes checked, each direction handed to the lowering
// `ConvolutionPlan` chooses for it.


private func checkConvShapes(_ g: Conv2DGeometry, input: Tensor, output: Tensor, weight: Tensor, bias: Tensor?,
                             outputName: String = "output") {
    checkShape(input.shape == g.inputShape, "conv2d: input shape \(input.shape) does not match the geometry's input shape \(g.inputShape)")
    checkShape(output.shape == g.outputShape, "conv2d: \(outputName) shape \(output.shape) does not match the expected shape \(g.outputShape)")
    checkShape(weight.shape == g.weightShape, "conv2d: weight shape \(weight.shape) does not match the expected shape \(g.weightShape)")
    if let bias {
        checkShape(bias.shape == [g.outChannels], "conv2d: bias shape \(bias.shape) does not match the expected shape \([g.outChannels])")
    }
}

/// output (N, outC, outH, outW) = conv(input (N, C, H, W), weight (outC, C, kH, kW)) + bias (outC),
/// or added to output when `accumulate`.
///
/// Each worker takes whole work items (see `ConvolutionPlan`) and computes each with the
/// lowering the plan chose: into its own scratch and through a single-threaded sgemm for the
/// GEMM lowerings, or directly.
public func conv2dForward(output: Tensor, input: Tensor, weight: Tensor, bias: Tensor?,
                          geometry g: Conv2DGeometry, accumulate: Bool = false, workspace: Workspace) {
    checkConvShapes(g, input: input, output: output, weight: weight, bias: bias)
    ConvolutionCalls.record(g) { $0.forward += 1 }
    convolve(output.data, input.data, weight.data, bias?.data, accumulate: accumulate, workspace, g)
}

/// Gradients of `conv2dForward` from dOutput (N, outC, outH, outW): dInput (N, C, H, W),
/// dWeight (outC, C, kH, kW) and dBias (outC) are overwritten, or added to when
/// `accumulateInput` (for dInput) or `accumulate` (for dWeight, dBias) is true. Pass nil for
/// gradients that are not needed.
///
/// The weight gradient is summed in a fixed split of the items into groups whose partial sums
/// are added in order, so it does not depend on the thread count. For stride 1 (8+ input
/// channels) the input gradient is the forward convolution of dOutput with the flipped,
/// transposed kernel; otherwise its lowering adds the lowered gradient back into the image.
public func conv2dBackward(dInput: Tensor?, dWeight: Tensor?, dBias: Tensor?,
                           dOutput: Tensor, input: Tensor, weight: Tensor,
                           geometry g: Conv2DGeometry, accumulate: Bool = false, accumulateInput: Bool = false,
                           workspace: Workspace) {
    checkConvShapes(g, input: input, output: dOutput, weight: weight, bias: dBias, outputName: "dOutput")
    if let dInput { checkShape(dInput.shape == g.inputShape, "conv2d: dInput shape \(dInput.shape) does not match the input shape \(g.inputShape)") }
    if let dWeight { checkShape(dWeight.shape == g.weightShape, "conv2d: dWeight shape \(dWeight.shape) does not match the weight shape \(g.weightShape)") }
    ConvolutionCalls.record(g) {
        if dInput != nil { $0.inputGradient += 1 }
        if dWeight != nil { $0.weightGradient += 1 }
    }
    if let dBias { channelSums(dBias.data, dOutput.data, images: g.batch, channels: g.outChannels, pixels: g.outPixels, accumulate: accumulate) }
    if let dWeight { convWeightGradient(dWeight.data, dOutput.data, input.data, accumulate: accumulate, workspace, g) }
    if let dInput { convInputGradient(dInput.data, dOutput.data, weight.data, accumulate: accumulateInput, workspace, g) }
}

/// The forward convolution on raw buffers (shapes already checked).
func convolve(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
              accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
    ConvolutionPlan.lowering(for: .forward, of: g).forward(y, x, w, bias, accumulate: accumulate, workspace, g)
}

/// The weight gradient on raw buffers.
func convWeightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                        accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
    ConvolutionPlan.lowering(for: .weightGradient, of: g).weightGradient(dW, dy, x, accumulate: accumulate, workspace, g)
}

/// The input gradient on raw buffers: the forward pass of `g.inputGradientConvolution` where
/// there is one, else its lowering's.
func convInputGradient(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                       accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
    guard let transposed = g.inputGradientConvolution else {
        ConvolutionPlan.lowering(for: .inputGradient, of: g).inputGradient(dx, dy, w, accumulate: accumulate, workspace, g)
        return
    }
    let flipped = workspace.buffers(.flippedWeight, workers: 1, count: g.weightShape.reduce(1, *))[0]
    flipTransposed(flipped, w, g)
    convolve(dx, dy, flipped, nil, accumulate: accumulate, workspace, transposed)
}

/// flipped (C, outC, kH, kW)[c, o, i, j] = weight (outC, C, kH, kW)[o, c, kH-1-i, kW-1-j]: each
/// kernel's taps in reverse order.
private func flipTransposed(_ flipped: UnsafeMutablePointer<Float>, _ weight: UnsafePointer<Float>, _ g: Conv2DGeometry) {
    let C = g.inChannels, OC = g.outChannels, T = g.kernelHeight * g.kernelWidth
    Parallel.forRanges(C * OC, minimumPerThread: 4096) { pairs in
        for pair in pairs {
            let c = pair / OC, o = pair % OC
            let source = weight + (o * C + c) * T, target = flipped + pair * T
            for t in 0..<T { target[t] = source[T - 1 - t] }
        }
    }
}

import CKernels

// Direct convolution (DirectConvolution.c) for inputs of few channels: the one-channel stem,
// whose GEMM would be only C*kH*kW = 9 deep. One work item per image; the C kernel copies the
// image's planes, shifted once per kernel column, into the worker's scratch and computes each
// output plane in vectors of 16 consecutive pixels.

extension Conv2DGeometry {
    /// Whether the forward pass and the weight gradient run as a direct convolution: stride 1,
    /// dilation 1, at most 4 input channels, padding smaller than the kernel.
    var convolvesDirectly: Bool {
        strideHeight == 1 && strideWidth == 1 && dilationHeight == 1 && dilationWidth == 1 && inChannels <= 4
            && padHeight < kernelHeight && padWidth < kernelWidth
    }

    /// Scratch floats of one worker: the shifted copies of an image's planes, and the weight
    /// gradient's tap sums.
    var directScratch: Int {
        max(abn_direct_scratch(inChannels, inHeight, inWidth, kernelHeight, kernelWidth, padHeight, padWidth),
            abn_direct_weight_scratch(inChannels, inHeight, inWidth, kernelHeight, kernelWidth, padHeight, padWidth))
    }
}

/// y = conv(x, w) + bias (+ y when `accumulate`), image by image.
func convolveDirectly(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                      _ bias: UnsafePointer<Float>?, _ g: Conv2DGeometry, _ plan: ConvolutionPlan,
                      _ workspace: Workspace, accumulate: Bool) {
    let workers = Parallel.workers(for: plan.items)
    let scratch = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)
    Parallel.forEachClaimed(plan.items, workers: workers) { worker, n in
        abn_direct_conv(y + n * g.outChannels * g.outPixels, x + n * g.inChannels * g.inPixels, w, bias, accumulate ? 1 : 0,
                        g.inChannels, g.inHeight, g.inWidth, g.outChannels, g.kernelHeight, g.kernelWidth, g.padHeight, g.padWidth,
                        scratch[worker])
    }
}

/// dW: each group of images (`ConvolutionPlan.groups`) summed image by image into its own
/// partial, then the partials in order.
func convWeightGradientDirectly(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                _ g: Conv2DGeometry, _ plan: ConvolutionPlan, _ accumulate: Bool, _ workspace: Workspace) {
    let count = g.weightShape.reduce(1, *)
    let workers = Parallel.workers(for: plan.groups)
    let scratch = workspace.buffers(.columns, workers: workers, count: plan.loweredCount)
    let partials = workspace.buffers(.weightGradient, workers: plan.groups, count: count)
    Parallel.forEachClaimed(plan.groups, workers: workers) { worker, group in
        let partial = partials[group]
        partial.update(repeating: 0, count: count)
        for n in plan.items(ofGroup: group) {
            abn_direct_conv_weight_gradient(partial, dy + n * g.outChannels * g.outPixels, x + n * g.inChannels * g.inPixels,
                                            g.inChannels, g.inHeight, g.inWidth, g.outChannels, g.kernelHeight, g.kernelWidth,
                                            g.padHeight, g.padWidth, scratch[worker])
        }
    }
    sumPartials(dW, partials.prefix(plan.groups), count: count, accumulate: accumulate)
}

import CKernels

// Direct convolution (DirectConvolution.c) for inputs of few channels: the one-channel stem,
// whose GEMM would be only C*kH*kW = 9 deep. One work item per image; the C kernel copies the
// image's planes, shifted once per kernel column, into the worker's scratch and computes each
// output plane in vectors of 16 consecutive pixels.

/// No lowering: the forward pass and the weight gradient computed directly, image by image.
/// The input gradient (few input channels: not a transposed convolution) is col2im's.
enum DirectLowering: ConvolutionLowering {
    static let name = "direct"
    static let inputGradientFallback: (any ConvolutionLowering.Type)? = Im2colLowering.self

    /// Stride 1, dilation 1, at most 4 input channels, padding smaller than the kernel.
    static func applies(to g: Conv2DGeometry) -> Bool {
        g.strideHeight == 1 && g.strideWidth == 1 && g.dilationHeight == 1 && g.dilationWidth == 1 && g.inChannels <= 4
            && g.padHeight < g.kernelHeight && g.padWidth < g.kernelWidth
    }

    /// One image per item; the scratch holds the shifted copies of its planes and the weight
    /// gradient's tap sums.
    static func plan(for direction: ConvolutionDirection, of g: Conv2DGeometry, budget: Int) -> ConvolutionPlan {
        let scratch = max(abn_direct_scratch(g.inChannels, g.inHeight, g.inWidth, g.kernelHeight, g.kernelWidth, g.padHeight, g.padWidth),
                          abn_direct_weight_scratch(g.inChannels, g.inHeight, g.inWidth, g.kernelHeight, g.kernelWidth,
                                                    g.padHeight, g.padWidth))
        return ConvolutionPlan(self, g, images: 1, rows: g.outHeight, maxColumns: g.outPixels, loweredCount: scratch)
    }

    /// y = conv(x, w) + bias (+ y when `accumulate`), image by image.
    static func forward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                        _ bias: UnsafePointer<Float>?, accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .forward, of: g, budget: workspace.columnBudget)
        let workers = Parallel.workers(for: plan.items)
        let scratch = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)
        Parallel.forEachClaimed(plan.items, workers: workers) { worker, n in
            abn_direct_conv(y + n * g.outChannels * g.outPixels, x + n * g.inChannels * g.inPixels, w, bias, accumulate ? 1 : 0,
                            g.inChannels, g.inHeight, g.inWidth, g.outChannels, g.kernelHeight, g.kernelWidth, g.padHeight, g.padWidth,
                            scratch[worker])
        }
    }

    /// dW: each group of images summed image by image into its own partial, then the partials
    /// in order.
    static func weightGradient(_ dW: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                               accumulate: Bool, _ workspace: Workspace, _ g: Conv2DGeometry) {
        let plan = plan(for: .weightGradient, of: g, budget: workspace.columnBudget)
        let count = g.weightShape.reduce(1, *)
        let workers = Parallel.workers(for: plan.groups)
        let scratch = workspace.buffers(.loweredInput, workers: workers, count: plan.loweredCount)
        let partials = workspace.buffers(.weightGradientPartials, workers: plan.groups, count: count)
        Parallel.forEachClaimed(plan.groups, workers: workers) { worker, group in
            let partial = partials[group]
            partial.update(repeating: 0, count: count)
            for n in plan.items(ofGroup: group) {
                abn_direct_conv_weight_gradient(partial, dy + n * g.outChannels * g.outPixels, x + n * g.inChannels * g.inPixels,
                                                g.inChannels, g.inHeight, g.inWidth, g.outChannels, g.kernelHeight, g.kernelWidth,
                                                g.padHeight, g.padWidth, scratch[worker])
            }
        }
        sumPartials(dW, partials.prefix(plan.groups), accumulate: accumulate, count: count)
    }
}

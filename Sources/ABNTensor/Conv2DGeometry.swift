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

    /// How the forward pass is computed, for reports: its lowering's name ("direct", "winograd",
    /// "taps", "phase-stack", "row-shift", "stride2-im2col" or "im2col").
    public var lowering: String { ConvolutionPlan.lowering(for: .forward, of: self).name }
    /// How the weight gradient is computed, named like `lowering`.
    public var weightGradientLowering: String { ConvolutionPlan.lowering(for: .weightGradient, of: self).name }
    /// How the input gradient is computed: as the forward pass of `inputGradientConvolution`
    /// (its lowering's name), else "stride2-im2col" or "col2im".
    public var inputGradientLowering: String {
        if let transposed = inputGradientConvolution { return transposed.lowering }
        return ConvolutionPlan.lowering(for: .inputGradient, of: self).inputGradientLowering.inputGradientName
    }

    /// For stride 1 and 8+ input channels: the convolution of dOutput whose result is dInput
    /// (flipped, transposed kernel; padding dilation*(k-1) - padding). Nil for other strides,
    /// when the padding exceeds the kernel's dilated extent, or with fewer input channels (the
    /// GEMM would have too few rows to be efficient: col2im is faster).
    var inputGradientConvolution: Conv2DGeometry? {
        let padH = dilationHeight * (kernelHeight - 1) - padHeight
        let padW = dilationWidth * (kernelWidth - 1) - padWidth
        guard strideHeight == 1, strideWidth == 1, padH >= 0, padW >= 0, inChannels >= 8 else { return nil }
        return Conv2DGeometry(input: outputShape, outChannels: inChannels, kernel: (kernelHeight, kernelWidth),
                              padding: (padH, padW), dilation: (dilationHeight, dilationWidth))
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

import ABNTensor
import Foundation

/// A convolution with a weight parameter (outC, C, k, k) and optional bias, square kernel,
/// stride, padding and dilation.
/// It keeps nothing: the caller passes the forward input again to `backward`.
public final class Conv2DLayer {
    public let weight: Parameter
    public let bias: Parameter?
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    public let stride: Int
    public let padding: Int
    public let dilation: Int

    /// He-normal initialization (std sqrt(2 / fan_in)), bias zero.
    public init(_ name: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, bias: Bool = false, rng: inout SplitMix64) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        weight = Parameter("\(name).weight", shape: [outChannels, inChannels, kernel, kernel],
                           normalStd: Float((2.0 / Double(inChannels * kernel * kernel)).squareRoot()), rng: &rng)
        self.bias = bias ? Parameter("\(name).bias", shape: [outChannels], initial: .constant(0)) : nil
    }

    public var allParameters: [Parameter] { [weight] + (bias.map { [$0] } ?? []) }

    public func geometry(for input: Tensor) -> Conv2DGeometry {
        checkShape(input.shape.count == 4 && input.shape[1] == inChannels,
                   "conv \(weight.name): input shape \(input.shape) does not match \(inChannels) input channels")
        return Conv2DGeometry(input: input.shape, outChannels: outChannels, kernel: kernel, stride: stride, padding: padding, dilation: dilation)
    }

    /// Multiply-adds of the forward pass for one image of height x width, and the output size.
    public func multiplyAdds(height: Int, width: Int) -> (count: Double, height: Int, width: Int) {
        let g = Conv2DGeometry(input: [1, inChannels, height, width], outChannels: outChannels, kernel: kernel, stride: stride,
                               padding: padding, dilation: dilation)
        return (g.forwardFlops / 2, g.outHeight, g.outWidth)
    }

    /// (N, outC, outH, outW) for input (N, C, H, W).
    public func forward(_ x: Tensor, workspace: Workspace) -> Tensor {
        let g = geometry(for: x)
        let y = Tensor(uninitialized: g.outputShape)
        conv2dForward(output: y, input: x, weight: weight.value, bias: bias?.value, geometry: g, workspace: workspace)
        return y
    }

    /// Writes the parameter gradients (overwriting); returns dInput when `inputGradient`.
    public func backward(_ dy: Tensor, input x: Tensor, inputGradient: Bool, workspace: Workspace) -> Tensor? {
        let dx = inputGradient ? Tensor(uninitialized: x.shape) : nil
        conv2dBackward(dInput: dx, dWeight: weight.gradient, dBias: bias?.gradient, dOutput: dy, input: x,
                       weight: weight.value, geometry: geometry(for: x), workspace: workspace)
        return dx
    }

    /// Writes the parameter gradients (overwriting) and adds the input gradient to `dInput`
    /// (for a branch that shares its input with another).
    public func backward(_ dy: Tensor, input x: Tensor, addingInputGradientTo dInput: Tensor, workspace: Workspace) {
        conv2dBackward(dInput: dInput, dWeight: weight.gradient, dBias: bias?.gradient, dOutput: dy, input: x,
                       weight: weight.value, geometry: geometry(for: x), accumulateInput: true, workspace: workspace)
    }
}

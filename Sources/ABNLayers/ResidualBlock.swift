import ABNTensor

/// A residual block that a `Backbone` stacks into stages. `forward` keeps what `backward`
/// needs; parameter names start with the block's name ("stage2.0.bn1.weight").
protocol ResidualBlock: AnyObject {
    /// The block `name` ("stage2.0") from `inChannels` for a stage of `width` channels; its first
    /// convolution has `stride`, its 3x3 convolutions `dilation`. Weights are drawn from `rng`.
    init(_ name: String, inChannels: Int, width: Int, stride: Int, dilation: Int, norm: NormSettings, rng: inout SplitMix64) throws
    /// Channels of the output.
    var outChannels: Int { get }
    /// In PyTorch state-dict order.
    var allParameters: [Parameter] { get }
    /// In forward order.
    var normLayers: [NormAct] { get }
    /// The norm layers and the activations after residual adds, in forward order.
    var probedLayers: [any ProbedLayer] { get }
    /// The output (N, outChannels, H', W') for x (N, inChannels, H, W); x may be overwritten
    /// (an in-place norm layer).
    func forward(_ x: Tensor, workspace: Workspace) throws -> Tensor
    /// The input's gradient for the output's gradient `dOut` (which may be overwritten). Writes the
    /// parameter gradients and calls `gradientsReady` with each as soon as it is final.
    func backward(_ dOut: Tensor, workspace: Workspace, gradientsReady: (Parameter) -> Void) -> Tensor
    /// Forward multiply-adds for one image of `size` (height, width), added to `total`; returns
    /// the output size.
    func multiplyAdds(from size: (height: Int, width: Int), total: inout Double) -> (height: Int, width: Int)
}

extension ResidualBlock {
    /// A block whose only activations are in its norm layers.
    var probedLayers: [any ProbedLayer] { normLayers }
}

import ABNTensor

/// A network a replica trains: the reference classifier or the DeepLabV3 segmentation network.
///
/// `forward` keeps what `backward` needs; `backward` writes every parameter gradient into
/// `parameters.gradients` (overwriting) and calls `gradientsReady` as each one is final, in
/// reverse order, so that gradient averaging can overlap the rest of the backward pass.
public protocol Network: AnyObject {
    /// Flat parameters, gradients and buffers, with PyTorch state-dict names.
    var parameters: ParameterStore { get }
    /// Every norm layer, in forward order.
    var normLayers: [NormAct] { get }
    /// The norm layers and the activations after residual adds, in forward order.
    var probedLayers: [any ProbedLayer] { get }
    /// The norm layers that see one value per image and channel (after a global pooling):
    /// they cannot normalize a single image on its own.
    var perImageNormLayers: [NormAct] { get }
    /// Called with each parameter whose gradient the backward pass has just finished.
    var gradientsReady: ((Parameter) -> Void)? { get set }
    /// Input channels and output classes.
    var inChannels: Int { get }
    var classes: Int { get }
    /// Logits for images (N, inChannels, H, W): (N, classes) for a classifier; for a
    /// segmentation network (N, classes, h, w) at its output stride, to be resized bilinearly
    /// to H x W (`upsampledPixelCrossEntropy` does it inside the loss).
    func forward(_ images: Tensor) throws -> Tensor
    /// Backward from the gradient of the logits (their shape).
    func backward(_ dLogits: Tensor)
    /// The architecture and its sizes in one line (checkpoints store it to refuse another model).
    var summary: String { get }
    /// Multiply-adds of the convolutions and linear layers for one image of height x width, forward.
    func forwardMultiplyAdds(height: Int, width: Int) -> Double
    /// The keys of the next training forward's random draws (dropout), one per image: each image's
    /// draws depend only on its key, so that they do not depend on how a batch is split.
    func setDrawKeys(_ keys: [UInt64])
}

extension Network {
    /// A network whose only activations are in its norm layers.
    public var probedLayers: [any ProbedLayer] { normLayers }

    /// A network without random draws ignores the keys.
    public func setDrawKeys(_ keys: [UInt64]) {}

    /// Training (batch statistics) or eval (running statistics) for every norm layer.
    public var training: Bool {
        get { normLayers.first?.training ?? true }
        set { for layer in normLayers { layer.training = newValue } }
    }
}

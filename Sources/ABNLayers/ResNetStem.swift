import ABNTensor

/// torchvision's ResNet stem: `conv1` (7x7, stride 2, padding 3, no bias), `bn1` (a norm layer
/// with the activation) and 3x3 max pooling with stride 2 and padding 1: a quarter of the
/// input's height and width.
final class ResNetStem: BackboneStem {
    let conv1: Conv2DLayer
    let bn1: NormAct
    static let pooling = MaxPoolGeometry(kernel: 3, stride: 2, padding: 1)

    // kept for backward: the images, and the pooling's input (nil in checkpoint mode, recomputed)
    private var images: Tensor?
    private var normed: Tensor?

    /// Parameter names start with `prefix` ("" or "backbone.").
    init(_ prefix: String, inChannels: Int, outChannels: Int, norm: NormSettings, rng: inout SplitMix64) throws {
        conv1 = Conv2DLayer("\(prefix)conv1", inChannels: inChannels, outChannels: outChannels, kernel: 7, stride: 2, padding: 3, rng: &rng)
        bn1 = try norm.layer("\(prefix)bn1", channels: outChannels)
    }

    var outChannels: Int { conv1.outChannels }
    var allParameters: [Parameter] { conv1.allParameters + bn1.allParameters }
    var normLayers: [NormAct] { [bn1] }

    func forward(_ images: Tensor, workspace: Workspace) throws -> Tensor {
        let normed = try bn1.forward(conv1.forward(images, workspace: workspace))
        let pooled = Tensor(uninitialized: Self.pooling.outputShape(for: normed.shape))
        maxPool2dForward(output: pooled, input: normed, geometry: Self.pooling)
        self.images = images
        self.normed = bn1.mode != .checkpoint ? normed : nil
        return pooled
    }

    func backward(_ gradient: Tensor, workspace: Workspace, gradientsReady ready: (Parameter) -> Void) {
        guard let images else { preconditionFailure("ResNetStem.backward before forward") }
        let normed = self.normed ?? bn1.recomputeOutput()
        self.normed = nil
        let dNormed = Tensor(uninitialized: normed.shape)
        maxPool2dBackward(dInput: dNormed, dOutput: gradient, input: normed, geometry: Self.pooling)
        let dConv = bn1.backward(dNormed)
        ready(bn1.weight); ready(bn1.bias)
        _ = conv1.backward(dConv, input: images, inputGradient: false, workspace: workspace)
        ready(conv1.weight)
        self.images = nil
    }

    func multiplyAdds(from size: (height: Int, width: Int)) -> (count: Double, height: Int, width: Int) {
        let conv = conv1.multiplyAdds(height: size.height, width: size.width)
        let pooled = Self.pooling.outputShape(for: [1, 1, conv.height, conv.width])
        return (conv.count, pooled[2], pooled[3])
    }
}

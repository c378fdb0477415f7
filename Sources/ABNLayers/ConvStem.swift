import ABNTensor

/// The reference networks' stem: one 3x3 convolution (padding 1, no bias) named `stem`.
final class ConvStem: BackboneStem {
    let conv: Conv2DLayer
    /// The images of the last forward, kept for the weight gradient.
    private var images: Tensor?

    init(inChannels: Int, outChannels: Int, stride: Int, rng: inout SplitMix64) {
        conv = Conv2DLayer("stem", inChannels: inChannels, outChannels: outChannels, kernel: 3, stride: stride, padding: 1, rng: &rng)
    }

    var outChannels: Int { conv.outChannels }
    var allParameters: [Parameter] { conv.allParameters }
    var normLayers: [NormAct] { [] }

    func forward(_ images: Tensor, workspace: Workspace) throws -> Tensor {
        self.images = images
        return conv.forward(images, workspace: workspace)
    }

    func backward(_ gradient: Tensor, workspace: Workspace, gradientsReady ready: (Parameter) -> Void) {
        guard let images else { preconditionFailure("ConvStem.backward before forward") }
        _ = conv.backward(gradient, input: images, inputGradient: false, workspace: workspace)
        ready(conv.weight)
        self.images = nil
    }

    func multiplyAdds(from size: (height: Int, width: Int)) -> (count: Double, height: Int, width: Int) {
        conv.multiplyAdds(height: size.height, width: size.width)
    }
}

import ABNTensor

/// torchvision's basic block (ResNet-18 and -34):
///   out = act(bn2(conv2(bn1+act(conv1 x))) + shortcut)
/// conv1 3x3 (C -> width, stride), conv2 3x3 (width -> width); both dilated by `dilation`
/// (padding = dilation), which torchvision refuses but a DeepLab body at output stride 8 or 16
/// needs. bn1 is a norm layer with the activation, bn2 has none; `ResidualJoin` adds the
/// shortcut and applies the activation. Parameter names are torchvision's.
final class BasicBlock: ResidualBlock {
    let conv1: Conv2DLayer
    let bn1: NormAct
    let conv2: Conv2DLayer
    let bn2: NormAct
    let join: ResidualJoin

    // kept for backward: the input, and conv2's input (nil in checkpoint mode, recomputed)
    private var input: Tensor?
    private var h1: Tensor?

    init(_ name: String, inChannels: Int, width: Int, stride: Int, dilation: Int, norm: NormSettings, rng: inout SplitMix64) throws {
        conv1 = Conv2DLayer("\(name).conv1", inChannels: inChannels, outChannels: width, kernel: 3, stride: stride, padding: dilation,
                            dilation: dilation, rng: &rng)
        bn1 = try norm.layer("\(name).bn1", channels: width)
        conv2 = Conv2DLayer("\(name).conv2", inChannels: width, outChannels: width, kernel: 3, padding: dilation, dilation: dilation, rng: &rng)
        bn2 = try norm.layer("\(name).bn2", channels: width, activation: .identity)
        join = try ResidualJoin(name, inChannels: inChannels, outChannels: width, stride: stride, norm: norm, rng: &rng)
    }

    var outChannels: Int { conv2.outChannels }

    /// In PyTorch state-dict order: conv1, bn1, conv2, bn2, downsample.
    var allParameters: [Parameter] {
        conv1.allParameters + bn1.allParameters + conv2.allParameters + bn2.allParameters + join.allParameters
    }

    var normLayers: [NormAct] { [bn1, bn2] + join.normLayers }
    var probedLayers: [any ProbedLayer] { [bn1, bn2] + join.probedLayers }

    func multiplyAdds(from size: (height: Int, width: Int), total: inout Double) -> (height: Int, width: Int) {
        total += join.multiplyAdds(from: size)
        let first = conv1.multiplyAdds(height: size.height, width: size.width)
        let second = conv2.multiplyAdds(height: first.height, width: first.width)
        total += first.count + second.count
        return (second.height, second.width)
    }

    func forward(_ x: Tensor, workspace: Workspace) throws -> Tensor {
        let h1 = try bn1.forward(conv1.forward(x, workspace: workspace))
        let branch = try bn2.forward(conv2.forward(h1, workspace: workspace))
        self.h1 = bn1.mode != .checkpoint ? h1 : nil
        input = x
        return try join.forward(branch: branch, input: x, lastNorm: bn2, workspace: workspace)
    }

    func backward(_ dOut: Tensor, workspace: Workspace, gradientsReady ready: (Parameter) -> Void) -> Tensor {
        guard let x = input else { preconditionFailure("BasicBlock.backward before forward") }
        let (dBranch, dx) = join.backward(dOut, workspace: workspace, gradientsReady: ready)
        let d2 = bn2.backward(dBranch)
        ready(bn2.weight); ready(bn2.bias)
        let h1 = self.h1 ?? bn1.recomputeOutput()
        self.h1 = nil
        let dh1 = conv2.backward(d2, input: h1, inputGradient: true, workspace: workspace)!
        ready(conv2.weight)
        let d1 = bn1.backward(dh1)
        ready(bn1.weight); ready(bn1.bias)
        conv1.backward(d1, input: x, addingInputGradientTo: dx, workspace: workspace)
        ready(conv1.weight)
        input = nil
        return dx
    }
}

import ABNTensor

/// torchvision's bottleneck block (ResNet-50 and deeper), stride on the 3x3:
///   out = act(bn3(conv3(bn1+act(conv1 x) -> conv2 -> bn2+act)) + shortcut)
/// conv1 1x1 (C -> width), conv2 3x3 (stride, dilation), conv3 1x1 (width -> 4 width); bn1 and
/// bn2 are norm layers with the activation, bn3 has none; `ResidualJoin` adds the shortcut and
/// applies the activation. Parameter names are torchvision's (`layer2.0.conv2.weight`,
/// `layer2.0.downsample.1.running_var`).
final class Bottleneck: ResidualBlock {
    static let expansion = 4

    let conv1: Conv2DLayer
    let bn1: NormAct
    let conv2: Conv2DLayer
    let bn2: NormAct
    let conv3: Conv2DLayer
    let bn3: NormAct
    let join: ResidualJoin

    // kept for backward: the input, and the inputs of conv2 and conv3 (nil in checkpoint mode, recomputed)
    private var input: Tensor?
    private var h1: Tensor?
    private var h2: Tensor?

    init(_ name: String, inChannels: Int, width: Int, stride: Int, dilation: Int, norm: NormSettings, rng: inout SplitMix64) throws {
        let out = width * Self.expansion
        conv1 = Conv2DLayer("\(name).conv1", inChannels: inChannels, outChannels: width, kernel: 1, rng: &rng)
        bn1 = try norm.layer("\(name).bn1", channels: width)
        conv2 = Conv2DLayer("\(name).conv2", inChannels: width, outChannels: width, kernel: 3, stride: stride, padding: dilation,
                            dilation: dilation, rng: &rng)
        bn2 = try norm.layer("\(name).bn2", channels: width)
        conv3 = Conv2DLayer("\(name).conv3", inChannels: width, outChannels: out, kernel: 1, rng: &rng)
        bn3 = try norm.layer("\(name).bn3", channels: out, activation: .identity)
        join = try ResidualJoin(name, inChannels: inChannels, outChannels: out, stride: stride, norm: norm, rng: &rng)
    }

    var outChannels: Int { conv3.outChannels }

    /// In PyTorch state-dict order: conv1, bn1, conv2, bn2, conv3, bn3, downsample.
    var allParameters: [Parameter] {
        conv1.allParameters + bn1.allParameters + conv2.allParameters + bn2.allParameters + conv3.allParameters + bn3.allParameters
            + join.allParameters
    }

    var normLayers: [NormAct] { [bn1, bn2, bn3] + join.normLayers }
    var probedLayers: [any ProbedLayer] { [bn1, bn2, bn3] + join.probedLayers }

    func multiplyAdds(from size: (height: Int, width: Int), total: inout Double) -> (height: Int, width: Int) {
        total += join.multiplyAdds(from: size)
        var size = size
        for conv in [conv1, conv2, conv3] {
            let m = conv.multiplyAdds(height: size.height, width: size.width)
            total += m.count
            size = (m.height, m.width)
        }
        return size
    }

    func forward(_ x: Tensor, workspace: Workspace) throws -> Tensor {
        let h1 = try bn1.forward(conv1.forward(x, workspace: workspace))
        let h2 = try bn2.forward(conv2.forward(h1, workspace: workspace))
        let branch = try bn3.forward(conv3.forward(h2, workspace: workspace))
        let keep = bn1.mode != .checkpoint
        self.h1 = keep ? h1 : nil
        self.h2 = keep ? h2 : nil
        input = x
        return try join.forward(branch: branch, input: x, lastNorm: bn3, workspace: workspace)
    }

    func backward(_ dOut: Tensor, workspace: Workspace, gradientsReady ready: (Parameter) -> Void) -> Tensor {
        guard let x = input else { preconditionFailure("Bottleneck.backward before forward") }
        let (dBranch, dx) = join.backward(dOut, workspace: workspace, gradientsReady: ready)
        let d3 = bn3.backward(dBranch)
        ready(bn3.weight); ready(bn3.bias)
        let h2 = self.h2 ?? bn2.recomputeOutput()
        self.h2 = nil
        let dh2 = conv3.backward(d3, input: h2, inputGradient: true, workspace: workspace)!
        ready(conv3.weight)
        let d2 = bn2.backward(dh2)
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

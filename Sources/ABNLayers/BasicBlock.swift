import ABNTensor

/// torchvision's basic block (ResNet-18 and -34):
///   out = act(bn2(conv2(bn1+act(conv1 x))) + shortcut)
/// conv1 3x3 (C -> width, stride), conv2 3x3 (width -> width); both dilated by `dilation`
/// (padding = dilation), which torchvision refuses but a DeepLab body at output stride 8 or 16
/// needs. bn1 is a norm layer with the activation, bn2 has none; `ResidualJoin` adds the
/// shortcut and applies the activation. Parameter names are torchvision's.
final class BasicBlock: JoinedBlock {
    /// conv1, bn1, conv2, bn2, in PyTorch state-dict order (the downsample is the join's).
    let branch: ConvNormChain
    let join: ResidualJoin

    init(_ name: String, inChannels: Int, width: Int, stride: Int, dilation: Int, norm: NormSettings, rng: inout SplitMix64) throws {
        let conv1 = Conv2DLayer("\(name).conv1", inChannels: inChannels, outChannels: width, kernel: 3, stride: stride, padding: dilation,
                                dilation: dilation, rng: &rng)
        let bn1 = try norm.layer("\(name).bn1", channels: width)
        let conv2 = Conv2DLayer("\(name).conv2", inChannels: width, outChannels: width, kernel: 3, padding: dilation, dilation: dilation, rng: &rng)
        let bn2 = try norm.layer("\(name).bn2", channels: width, activation: .identity)
        branch = ConvNormChain([(conv1, bn1), (conv2, bn2)])
        join = try ResidualJoin(name, inChannels: inChannels, outChannels: width, stride: stride, norm: norm, rng: &rng)
    }
}

import ABNTensor

/// torchvision's bottleneck block (ResNet-50 and deeper), stride on the 3x3:
///   out = act(bn3(conv3(bn1+act(conv1 x) -> conv2 -> bn2+act)) + shortcut)
/// conv1 1x1 (C -> width), conv2 3x3 (stride, dilation), conv3 1x1 (width -> 4 width); bn1 and
/// bn2 are norm layers with the activation, bn3 has none; `ResidualJoin` adds the shortcut and
/// applies the activation. Parameter names are torchvision's (`layer2.0.conv2.weight`,
/// `layer2.0.downsample.1.running_var`).
final class Bottleneck: JoinedBlock {
    static let expansion = 4

    /// conv1, bn1, conv2, bn2, conv3, bn3, in PyTorch state-dict order (the downsample is the join's).
    let branch: ConvNormChain
    let join: ResidualJoin

    init(_ name: String, inChannels: Int, width: Int, stride: Int, dilation: Int, norm: NormSettings, rng: inout SplitMix64) throws {
        let out = width * Self.expansion
        let conv1 = Conv2DLayer("\(name).conv1", inChannels: inChannels, outChannels: width, kernel: 1, rng: &rng)
        let bn1 = try norm.layer("\(name).bn1", channels: width)
        let conv2 = Conv2DLayer("\(name).conv2", inChannels: width, outChannels: width, kernel: 3, stride: stride, padding: dilation,
                                dilation: dilation, rng: &rng)
        let bn2 = try norm.layer("\(name).bn2", channels: width)
        let conv3 = Conv2DLayer("\(name).conv3", inChannels: width, outChannels: out, kernel: 1, rng: &rng)
        let bn3 = try norm.layer("\(name).bn3", channels: out, activation: .identity)
        branch = ConvNormChain([(conv1, bn1), (conv2, bn2), (conv3, bn3)])
        join = try ResidualJoin(name, inChannels: inChannels, outChannels: out, stride: stride, norm: norm, rng: &rng)
    }
}

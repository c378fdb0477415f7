import ABNTensor

/// torchvision's ResNets by depth: the block and the number of blocks of each of the four
/// stages (`layer1` ... `layer4`, widths base, 2 base, 4 base, 8 base).
public enum ResNetDepth: String, CaseIterable, Sendable {
    case resnet18, resnet34, resnet50, resnet101

    /// Blocks of each stage.
    public var blocks: [Int] {
        switch self {
        case .resnet18: [2, 2, 2, 2]
        case .resnet34: [3, 4, 6, 3]
        case .resnet50: [3, 4, 6, 3]
        case .resnet101: [3, 4, 23, 3]
        }
    }

    /// Bottleneck blocks (4 x width output channels) rather than basic ones.
    public var bottleneck: Bool { self == .resnet50 || self == .resnet101 }

    /// Channels of the last stage's output for stage widths from `baseWidth`.
    public func outChannels(baseWidth: Int) -> Int { 8 * baseWidth * (bottleneck ? Bottleneck.expansion : 1) }

    /// The stages for an output stride of 32 (classification), 16 or 8: below 32 the last stages
    /// trade their stride 2 for dilation as torchvision's `replace_stride_with_dilation` does
    /// (16: layer4 dilated 2; 8: layer3 dilated 2, layer4 dilated 4, each stage's first block
    /// keeping the previous stage's dilation).
    func stages(baseWidth: Int, outputStride: Int) -> [BackboneStage] {
        let undone = (32 / outputStride).trailingZeroBitCount  // stages at the end that keep stride 1
        var dilation = 1
        return blocks.enumerated().map { i, depth in
            let previous = dilation
            var stride = i == 0 ? 1 : 2
            if i >= 4 - undone {
                dilation *= stride
                stride = 1
            }
            return .init(width: baseWidth << i, depth: depth, stride: stride, dilation: dilation, firstDilation: previous)
        }
    }
}

import ABNTensor

/// Shape of a torchvision ResNet: its depth, the first stage's width (64 in torchvision; the
/// others double), input channels and classes.
public struct ResNetShape: Sendable, Equatable {
    public var depth: ResNetDepth
    public var baseWidth: Int
    public var inChannels: Int
    public var classes: Int

    public init(depth: ResNetDepth, baseWidth: Int = 64, inChannels: Int = 3, classes: Int = 1000) {
        self.depth = depth
        self.baseWidth = baseWidth
        self.inChannels = inChannels
        self.classes = classes
    }
}

/// torchvision's ResNet classifier with every BN + ReLU pair a `NormAct` of the configured mode:
/// `conv1`/`bn1`/max pooling (`ResNetStem`), `layer1` ... `layer4` of `BasicBlock`s or
/// `Bottleneck`s, global average pooling and `fc`. Parameter names are torchvision's.
final class ResNetClassifier<Block: ResidualBlock>: Network {
    let shape: ResNetShape
    let parameters: ParameterStore
    let workspace = Workspace()
    var gradientsReady: ((Parameter) -> Void)?

    private let body: Backbone<Block>
    private let head: PooledClassifier

    /// Weights drawn from `seed` (He-normal convolutions, PyTorch's default linear
    /// initialization, norm weight 1 and bias 0).
    init(shape: ResNetShape, norm: NormSettings, seed: UInt64) throws {
        guard shape.baseWidth >= 1, shape.inChannels >= 1, shape.classes >= 2 else {
            throw LayerError.invalidSetting("ResNet shape \(shape) is invalid: base width and input channels must be positive and classes >= 2.")
        }
        self.shape = shape
        var rng = SplitMix64(seed: seed)
        let stem = try ResNetStem("", inChannels: shape.inChannels, outChannels: shape.baseWidth, norm: norm, rng: &rng)
        body = try Backbone(stem: stem, stagePrefix: "layer", stages: shape.depth.stages(baseWidth: shape.baseWidth, outputStride: 32),
                            norm: norm, rng: &rng)
        head = PooledClassifier(channels: body.outChannels, classes: shape.classes, rng: &rng)
        parameters = ParameterStore(body.allParameters + head.allParameters)
    }

    var normLayers: [NormAct] { body.normLayers }
    var probedLayers: [any ProbedLayer] { body.probedLayers }
    var perImageNormLayers: [NormAct] { [] }
    var inChannels: Int { shape.inChannels }
    var classes: Int { shape.classes }
    var summary: String {
        "\(shape.depth.rawValue) base_width=\(shape.baseWidth) in=\(shape.inChannels) classes=\(shape.classes) parameters=\(parameters.parameterCount)"
    }

    /// Logits (N, classes) for images (N, inChannels, H, W), which are kept (not changed).
    func forward(_ images: Tensor) throws -> Tensor {
        head.forward(try body.forward(images, workspace: workspace))
    }

    func backward(_ dLogits: Tensor) {
        let ready = gradientsReady ?? { _ in }
        var dx = head.backward(dLogits, gradientsReady: ready)
        body.backward(&dx, workspace: workspace, gradientsReady: ready)
    }

    func forwardMultiplyAdds(height: Int, width: Int) -> Double {
        body.multiplyAdds(height: height, width: width).count + head.multiplyAdds
    }
}

extension ResNetShape {
    /// The classifier of this shape, with its blocks as the depth says.
    public func classifier(norm: NormSettings, seed: UInt64 = 0) throws -> any Network {
        depth.bottleneck ? try ResNetClassifier<Bottleneck>(shape: self, norm: norm, seed: seed)
                         : try ResNetClassifier<BasicBlock>(shape: self, norm: norm, seed: seed)
    }
}

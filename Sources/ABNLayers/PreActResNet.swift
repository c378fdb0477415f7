import ABNTensor

/// Shape of a pre-activation ResNet (docs/design.md#reference-network): a 3x3 stem, stages of residual
/// blocks (the first block of every stage after the first has stride 2), and a head of
/// norm, global average pool and linear classifier.
public struct NetworkShape: Sendable, Equatable, Codable {
    /// Channels of each stage, e.g. [32, 64, 128].
    public var widths: [Int]
    /// Residual blocks of each stage, one per width.
    public var blocks: [Int]
    public var inChannels: Int
    public var classes: Int

    public init(widths: [Int] = [32, 64, 128], blocks: [Int] = [2, 2, 2], inChannels: Int = 1, classes: Int = 10) {
        self.widths = widths
        self.blocks = blocks
        self.inChannels = inChannels
        self.classes = classes
    }
}

/// The reference network, with its norm layers in any `NormMode`. Parameter names follow the
/// PyTorch peer's state dict (`stem.weight`, `stage2.0.bn1.running_var`, `fc.bias`, ...).
public final class PreActResNet: Network {
    public let shape: NetworkShape
    public let norm: NormSettings
    public let parameters: ParameterStore
    /// Scratch for the convolutions, reused across layers and steps.
    public let workspace = Workspace()
    /// Called with each parameter whose gradient the backward pass has just finished.
    public var gradientsReady: ((Parameter) -> Void)?

    private let body: Backbone<PreActBlock>
    private let headNorm: NormAct
    private let head: PooledClassifier

    /// Builds the network with weights drawn from `seed` (He-normal convolutions, PyTorch's
    /// default linear initialization, norm weight 1 and bias 0).
    public init(shape: NetworkShape = NetworkShape(), norm: NormSettings, seed: UInt64 = 0) throws {
        guard !shape.widths.isEmpty, shape.widths.allSatisfy({ $0 >= 1 }),
              shape.blocks.count == shape.widths.count, shape.blocks.allSatisfy({ $0 >= 1 }),
              shape.inChannels >= 1, shape.classes >= 2 else {
            throw LayerError.invalidSetting("network shape \(shape) is invalid: widths and counts must be positive and classes >= 2.")
        }
        self.shape = shape
        self.norm = norm
        var rng = SplitMix64(seed: seed)
        let stages = zip(shape.widths, shape.blocks).enumerated().map { i, stage in
            BackboneStage(width: stage.0, depth: stage.1, stride: i == 0 ? 1 : 2, dilation: 1)
        }
        body = try Backbone(stem: ConvStem(inChannels: shape.inChannels, outChannels: shape.widths[0], stride: 1, rng: &rng), stagePrefix: "stage",
                            stages: stages, norm: norm, rng: &rng)
        headNorm = try norm.layer("head_norm", channels: body.outChannels)
        head = PooledClassifier(channels: body.outChannels, classes: shape.classes, rng: &rng)
        parameters = ParameterStore(body.allParameters + headNorm.allParameters + head.allParameters)
    }

    public var normLayers: [NormAct] { body.normLayers + [headNorm] }
    public var perImageNormLayers: [NormAct] { [] }
    public var inChannels: Int { shape.inChannels }
    public var classes: Int { shape.classes }
    public var summary: String {
        "preact-resnet widths=\(shape.widths) blocks=\(stageDepthsSummary(shape.blocks)) in=\(shape.inChannels) classes=\(shape.classes) parameters=\(parameters.parameterCount)"
    }

    /// logits (N, classes) for images (N, inChannels, H, W). The images are kept (not changed)
    /// for the backward pass.
    public func forward(_ images: Tensor) throws -> Tensor {
        head.forward(try headNorm.forward(body.forward(images, workspace: workspace)))
    }

    /// Backward from dLogits (N, classes); parameter gradients land in `parameters.gradients`.
    public func backward(_ dLogits: Tensor) {
        let ready = gradientsReady ?? { _ in }
        var dx = headNorm.backward(head.backward(dLogits, gradientsReady: ready))
        ready(headNorm.weight); ready(headNorm.bias)
        body.backward(&dx, workspace: workspace, gradientsReady: ready)
    }

    /// Multiply-adds of convolutions and the linear layer for one image of size h x w, forward.
    public func forwardMultiplyAdds(height: Int, width: Int) -> Double {
        body.multiplyAdds(height: height, width: width).count + head.multiplyAdds
    }
}

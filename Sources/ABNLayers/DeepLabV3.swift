import ABNTensor

/// Shape of torchvision's DeepLabV3 on a ResNet backbone.
public struct DeepLabV3Shape: Sendable, Equatable {
    public var backbone: ResNetDepth
    /// Width of the backbone's first stage (64 in torchvision).
    public var baseWidth: Int
    public var inChannels: Int
    /// 8 or 16.
    public var outputStride: Int
    /// Width of the ASPP branches and the head (256 in torchvision).
    public var headWidth: Int
    /// Dilations of the three atrous ASPP branches.
    public var dilations: [Int]
    /// Dropout probability after the ASPP projection (0.5 in torchvision).
    public var dropout: Float
    public var classes: Int

    public init(backbone: ResNetDepth, baseWidth: Int = 64, inChannels: Int = 3, outputStride: Int = 8, headWidth: Int = 256,
                dilations: [Int]? = nil, dropout: Float = 0.5, classes: Int) {
        self.backbone = backbone
        self.baseWidth = baseWidth
        self.inChannels = inChannels
        self.outputStride = outputStride
        self.headWidth = headWidth
        self.dilations = dilations ?? Self.defaultDilations(outputStride: outputStride)
        self.dropout = dropout
        self.classes = classes
    }

    /// torchvision's atrous rates: (12, 24, 36) at output stride 8, (6, 12, 18) at 16.
    public static func defaultDilations(outputStride: Int) -> [Int] { [6, 12, 18].map { $0 * 16 / outputStride } }
}

/// torchvision's DeepLabV3 with every norm layer a `NormAct` of the configured mode:
///   backbone: a ResNet (`backbone.conv1` ... `backbone.layer4`, output stride 8 or 16 by dilation)
///   classifier.0: `ASPP`; classifier.1: 3x3 conv; classifier.2: norm; classifier.4: 1x1 conv with bias
/// and then bilinear resizing to the input size, which `forward` leaves to its caller (the loss
/// interpolates the logits pixel by pixel). Parameter names are torchvision's
/// (`deeplabv3_resnet50(num_classes=K, aux_loss=False)`).
final class DeepLabV3<Block: ResidualBlock>: Network {
    let shape: DeepLabV3Shape
    let parameters: ParameterStore
    let workspace = Workspace()
    var gradientsReady: ((Parameter) -> Void)?

    private let backbone: Backbone<Block>
    private let aspp: ASPP
    private let headConv: Conv2DLayer
    private let headNorm: NormAct
    private let classifier: Conv2DLayer
    private var drawKeys: [UInt64] = []

    // kept for backward (nil in checkpoint mode: recomputed)
    private var headOutput: Tensor?

    init(shape: DeepLabV3Shape, norm: NormSettings, seed: UInt64) throws {
        guard shape.baseWidth >= 1, shape.inChannels >= 1, shape.classes >= 2, shape.headWidth >= 1, [8, 16].contains(shape.outputStride),
              shape.dilations.count == 3, shape.dilations.allSatisfy({ $0 >= 1 }), (0..<1).contains(shape.dropout) else {
            throw LayerError.invalidSetting("DeepLabV3 shape \(shape) is invalid: output stride 8 or 16, three positive dilations, dropout in [0, 1), classes >= 2.")
        }
        self.shape = shape
        var rng = SplitMix64(seed: seed)
        let stem = try ResNetStem("backbone.", inChannels: shape.inChannels, outChannels: shape.baseWidth, norm: norm, rng: &rng)
        backbone = try Backbone(stem: stem, stagePrefix: "backbone.layer",
                                stages: shape.backbone.stages(baseWidth: shape.baseWidth, outputStride: shape.outputStride), norm: norm, rng: &rng)
        let hw = shape.headWidth
        aspp = try ASPP("classifier.0", inChannels: backbone.outChannels, width: hw, dilations: shape.dilations, dropout: shape.dropout,
                        norm: norm, rng: &rng)
        headConv = Conv2DLayer("classifier.1", inChannels: hw, outChannels: hw, kernel: 3, padding: 1, rng: &rng)
        headNorm = try norm.layer("classifier.2", channels: hw)
        classifier = Conv2DLayer("classifier.4", inChannels: hw, outChannels: shape.classes, kernel: 1, bias: true, rng: &rng)
        parameters = ParameterStore(backbone.allParameters + aspp.allParameters + headConv.allParameters + headNorm.allParameters
                                    + classifier.allParameters)
    }

    var normLayers: [NormAct] { backbone.normLayers + aspp.normLayers + [headNorm] }
    var probedLayers: [any ProbedLayer] { backbone.probedLayers + aspp.normLayers + [headNorm] }
    var perImageNormLayers: [NormAct] { [aspp.poolNorm] }
    var inChannels: Int { shape.inChannels }
    var classes: Int { shape.classes }
    var summary: String {
        "deeplabv3 backbone=\(shape.backbone.rawValue) base_width=\(shape.baseWidth) in=\(shape.inChannels) output_stride=\(shape.outputStride) "
            + "head=\(shape.headWidth) dilations=\(shape.dilations) dropout=\(shape.dropout) classes=\(shape.classes) parameters=\(parameters.parameterCount)"
    }

    func setDrawKeys(_ keys: [UInt64]) { drawKeys = keys }

    /// Logits (N, classes, h, w) at the output stride (h = ceil(H / stride)) for images
    /// (N, inChannels, H, W); resized bilinearly to H x W they are the network's prediction.
    func forward(_ images: Tensor) throws -> Tensor {
        let n = images.shape[0]
        let keys = drawKeys.count == n ? drawKeys : (0..<n).map { UInt64($0) }
        let body = try backbone.forward(images, workspace: workspace)
        let projected = try aspp.forward(body, imageKeys: keys, workspace: workspace)
        let head = try headNorm.forward(headConv.forward(projected, workspace: workspace))
        headOutput = headNorm.mode != .checkpoint ? head : nil
        return classifier.forward(head, workspace: workspace)
    }

    func backward(_ dLogits: Tensor) {
        let ready = gradientsReady ?? { _ in }
        let head = headOutput ?? headNorm.recomputeOutput()
        headOutput = nil
        let dHead = classifier.backward(dLogits, input: head, inputGradient: true, workspace: workspace)!
        ready(classifier.weight); ready(classifier.bias!)
        let dConv = headNorm.backward(dHead)
        ready(headNorm.weight); ready(headNorm.bias)
        let dProjected = headConv.backward(dConv, input: aspp.recomputeOutput(), inputGradient: true, workspace: workspace)!
        ready(headConv.weight)
        var dBody = aspp.backward(dProjected, workspace: workspace, gradientsReady: ready)
        backbone.backward(&dBody, workspace: workspace, gradientsReady: ready)
    }

    func forwardMultiplyAdds(height: Int, width: Int) -> Double {
        let body = backbone.multiplyAdds(height: height, width: width)
        return body.count + aspp.multiplyAdds(height: body.height, width: body.width)
            + [headConv, classifier].reduce(0) { $0 + $1.multiplyAdds(height: body.height, width: body.width).count }
    }
}

extension DeepLabV3Shape {
    /// The network of this shape, with its backbone's blocks as the depth says.
    public func network(norm: NormSettings, seed: UInt64 = 0) throws -> any Network {
        backbone.bottleneck ? try DeepLabV3<Bottleneck>(shape: self, norm: norm, seed: seed)
                            : try DeepLabV3<BasicBlock>(shape: self, norm: norm, seed: seed)
    }
}

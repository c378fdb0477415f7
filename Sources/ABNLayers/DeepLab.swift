import ABNTensor

/// Shape of the DeepLabV3 segmentation network.
public struct DeepLabShape: Sendable, Equatable {
    public var inChannels: Int
    /// Channels of the four body stages.
    public var widths: [Int]
    /// Residual blocks of each stage, one per width.
    public var blocks: [Int]
    /// 16: first-block strides (1, 2, 2, 2) after a stride-2 stem; 8: stage 4 keeps stride 1 and
    /// dilates its 3x3 convolutions by 2; 4: stages 3 and 4 keep stride 1, dilated by 2 and 4.
    public var outputStride: Int
    /// Width of the head's branches (hw).
    public var headWidth: Int
    /// Dilations of the three 3x3 atrous branches.
    public var dilations: [Int]
    public var classes: Int

    public init(inChannels: Int, widths: [Int], blocks: [Int], outputStride: Int, headWidth: Int, dilations: [Int], classes: Int) {
        self.inChannels = inChannels
        self.widths = widths
        self.blocks = blocks
        self.outputStride = outputStride
        self.headWidth = headWidth
        self.dilations = dilations
        self.classes = classes
    }
}

/// DeepLabV3 on a pre-activation ResNet body, every norm layer a `NormAct` of the configured
/// mode (docs/design.md#segmentation-network):
///
///   body: stem (3x3, stride 2) -> stages 1..4 of `PreActBlock`s -> body_norm
///   head: map_convs.0 (1x1) and map_convs.1..3 (3x3, dilations d1..d3), concatenated
///         (4 hw channels) -> map_bn -> red_conv (1x1, 4hw -> hw)
///         + global average pool -> global_pooling_conv -> global_pooling_bn -> pool_red_conv,
///           added to every position (never materialized at full size)
///         -> red_bn -> cls (1x1 with bias)
///
/// and then bilinear upsampling to the input size, which `forward` leaves to its caller: the
/// loss interpolates the logits pixel by pixel (`upsampledPixelCrossEntropy`), so that neither
/// the full-size logits nor their gradient (2 x classes values per input pixel) are held.
///
/// Parameter names follow the PyTorch state-dict convention of the reference implementation.
public final class DeepLab: Network {
    public let shape: DeepLabShape
    public let parameters: ParameterStore
    public let workspace = Workspace()
    public var gradientsReady: ((Parameter) -> Void)?

    private let backbone: Backbone<PreActBlock>
    private let bodyNorm: NormAct
    private let mapConvs: [Conv2DLayer]
    private let mapNorm: NormAct
    private let poolConv: Conv2DLayer
    private let poolNorm: NormAct
    private let reduceConv: Conv2DLayer
    private let poolReduceConv: Conv2DLayer
    private let reduceNorm: NormAct
    private let classifier: Conv2DLayer

    // kept for backward (the norm outputs are nil in checkpoint mode: recomputed)
    private var body: Tensor?       // body_norm output (N, C, h, w)
    private var mapped: Tensor?     // map_bn output (N, 4hw, h, w)
    private var pooled: Tensor?     // (N, C, 1, 1)
    private var poolNormed: Tensor? // global_pooling_bn output (N, hw, 1, 1)
    private var reduced: Tensor?    // red_bn output (N, hw, h, w)

    /// Builds the network with weights drawn from `seed` (He-normal convolutions, classifier
    /// bias 0, norm weight 1 and bias 0).
    public init(shape: DeepLabShape, norm: NormSettings, seed: UInt64 = 0) throws {
        guard shape.widths.count == 4, shape.widths.allSatisfy({ $0 >= 1 }), shape.blocks.count == 4, shape.blocks.allSatisfy({ $0 >= 1 }),
              shape.inChannels >= 1,
              shape.classes >= 2, shape.headWidth >= 1, shape.dilations.count == 3, shape.dilations.allSatisfy({ $0 >= 1 }),
              [4, 8, 16].contains(shape.outputStride) else {
            throw LayerError.invalidSetting("DeepLab shape \(shape) is invalid: four positive widths and depths, three dilations, output stride 4, 8 or 16, classes >= 2.")
        }
        self.shape = shape
        var rng = SplitMix64(seed: seed)
        let stages = zip(shape.widths, shape.blocks).enumerated().map { i, stage in
            let dilation = Self.dilation(stage: i, outputStride: shape.outputStride)
            return BackboneStage(width: stage.0, depth: stage.1, stride: i == 0 || dilation > 1 ? 1 : 2, dilation: dilation)
        }
        backbone = try Backbone(stem: ConvStem(inChannels: shape.inChannels, outChannels: shape.widths[0], stride: 2, rng: &rng), stagePrefix: "stage",
                                stages: stages, norm: norm, rng: &rng)
        let cin = backbone.outChannels
        bodyNorm = try norm.layer("body_norm", channels: cin)
        let hw = shape.headWidth
        mapConvs = [Conv2DLayer("head.map_convs.0", inChannels: cin, outChannels: hw, kernel: 1, rng: &rng)]
            + shape.dilations.enumerated().map { j, d in
                Conv2DLayer("head.map_convs.\(j + 1)", inChannels: cin, outChannels: hw, kernel: 3, padding: d, dilation: d, rng: &rng)
            }
        mapNorm = try norm.layer("head.map_bn", channels: 4 * hw)
        poolConv = Conv2DLayer("head.global_pooling_conv", inChannels: cin, outChannels: hw, kernel: 1, rng: &rng)
        poolNorm = try norm.layer("head.global_pooling_bn", channels: hw)
        reduceConv = Conv2DLayer("head.red_conv", inChannels: 4 * hw, outChannels: hw, kernel: 1, rng: &rng)
        poolReduceConv = Conv2DLayer("head.pool_red_conv", inChannels: hw, outChannels: hw, kernel: 1, rng: &rng)
        reduceNorm = try norm.layer("head.red_bn", channels: hw)
        classifier = Conv2DLayer("cls", inChannels: hw, outChannels: shape.classes, kernel: 1, bias: true, rng: &rng)
        let all: [Parameter] = backbone.allParameters + bodyNorm.allParameters
            + mapConvs.flatMap(\.allParameters) + mapNorm.allParameters + poolConv.allParameters + poolNorm.allParameters
            + reduceConv.allParameters + poolReduceConv.allParameters + reduceNorm.allParameters + classifier.allParameters
        parameters = ParameterStore(all)
    }

    /// Dilation of stage `stage` (0-based). Below output stride 16 the last stages give up their
    /// stride 2 (8: stage 4; 4: stages 3 and 4), and from the first of them on each stage dilates
    /// twice as much as the one before: 8 -> (1, 1, 1, 2), 4 -> (1, 1, 2, 4).
    static func dilation(stage: Int, outputStride: Int) -> Int {
        let firstUndone = 4 - (16 / outputStride).trailingZeroBitCount
        return stage >= firstUndone ? 1 << (stage - firstUndone + 1) : 1
    }

    public var normLayers: [NormAct] {
        backbone.normLayers + [bodyNorm, mapNorm, poolNorm, reduceNorm]
    }
    public var perImageNormLayers: [NormAct] { [poolNorm] }
    public var inChannels: Int { shape.inChannels }
    public var classes: Int { shape.classes }
    public var summary: String {
        "deeplab widths=\(shape.widths) blocks=\(stageDepthsSummary(shape.blocks)) in=\(shape.inChannels) output_stride=\(shape.outputStride) "
            + "head=\(shape.headWidth) dilations=\(shape.dilations) classes=\(shape.classes) parameters=\(parameters.parameterCount)"
    }

    /// Logits (N, classes, h, w) at the output stride (h = ceil(H / stride)) for images
    /// (N, inChannels, H, W); resized bilinearly to H x W they are the network's prediction.
    public func forward(_ images: Tensor) throws -> Tensor {
        let body = try bodyNorm.forward(backbone.forward(images, workspace: workspace))
        let n = body.shape[0], h = body.shape[2], w = body.shape[3], hw = shape.headWidth

        let concatenated = Tensor(uninitialized: [n, 4 * hw, h, w])
        for (j, conv) in mapConvs.enumerated() {
            placeChannels(conv.forward(body, workspace: workspace), into: concatenated, first: j * hw)
        }
        let mapped = try mapNorm.forward(concatenated)
        let reduced = reduceConv.forward(mapped, workspace: workspace)

        let pooled = Tensor(uninitialized: [n, body.shape[1]])
        globalAveragePoolForward(output: pooled, input: body)
        let pooledMap = pooled.reshaped([n, body.shape[1], 1, 1])
        let poolNormed = try poolNorm.forward(poolConv.forward(pooledMap, workspace: workspace))
        addBroadcast(reduced, poolReduceConv.forward(poolNormed, workspace: workspace))

        let reducedNormed = try reduceNorm.forward(reduced)
        let logits = classifier.forward(reducedNormed, workspace: workspace)

        let keep = bodyNorm.mode != .checkpoint
        self.body = keep ? body : nil
        self.mapped = keep ? mapped : nil
        self.pooled = pooledMap
        self.poolNormed = keep ? poolNormed : nil
        self.reduced = keep ? reducedNormed : nil
        return logits
    }

    /// Backward from dLogits (N, classes, h, w); parameter gradients land in `parameters.gradients`.
    public func backward(_ dLogits: Tensor) {
        let ready = gradientsReady ?? { _ in }
        // the head's gradients are freed as each part returns, before the body's backward
        var dx = bodyNorm.backward(headBackward(dLogits, ready: ready))
        ready(bodyNorm.weight); ready(bodyNorm.bias)
        backbone.backward(&dx, workspace: workspace, gradientsReady: ready)
    }

    /// The head's backward from the logits' gradient [n, classes, h, w] to the gradient of the
    /// body norm's output [n, C, h, w].
    private func headBackward(_ dLogits: Tensor, ready: (Parameter) -> Void) -> Tensor {
        let dReduced = classifierBackward(dLogits, ready: ready)
        let dPooled = poolingBackward(dReduced, ready: ready)
        return mapBackward(dReduced, dPooled: dPooled, ready: ready)
    }

    /// Through `cls` and `head.red_bn`: the gradient of the sum of `red_conv` and the pooling
    /// branch [n, hw, h, w].
    private func classifierBackward(_ dLogits: Tensor, ready: (Parameter) -> Void) -> Tensor {
        let reducedNormed = reduced ?? reduceNorm.recomputeOutput()
        reduced = nil
        let dReducedNormed = classifier.backward(dLogits, input: reducedNormed, inputGradient: true, workspace: workspace)!
        ready(classifier.weight); ready(classifier.bias!)
        let dReduced = reduceNorm.backward(dReducedNormed)
        ready(reduceNorm.weight); ready(reduceNorm.bias)
        return dReduced
    }

    /// The pooling branch: the broadcast add's gradient is the sum over positions. Returns the
    /// gradient of the pooled body output [n, C, 1, 1].
    private func poolingBackward(_ dReduced: Tensor, ready: (Parameter) -> Void) -> Tensor {
        guard let pooled else { preconditionFailure("DeepLab.backward before forward") }
        let dPoolReduced = Tensor(uninitialized: [dReduced.shape[0], shape.headWidth, 1, 1])
        sumPlanes(dPoolReduced, dReduced)
        let poolNormed = poolNormed ?? poolNorm.recomputeOutput()
        self.poolNormed = nil
        let dPoolNormed = poolReduceConv.backward(dPoolReduced, input: poolNormed, inputGradient: true, workspace: workspace)!
        ready(poolReduceConv.weight)
        let dPoolConv = poolNorm.backward(dPoolNormed)
        ready(poolNorm.weight); ready(poolNorm.bias)
        let dPooled = poolConv.backward(dPoolConv, input: pooled, inputGradient: true, workspace: workspace)!
        ready(poolConv.weight)
        self.pooled = nil
        return dPooled
    }

    /// The main branch (`red_conv`, `map_bn`, the four map convolutions) plus the pooling's
    /// share: the gradient of the body norm's output [n, C, h, w].
    private func mapBackward(_ dReduced: Tensor, dPooled: Tensor, ready: (Parameter) -> Void) -> Tensor {
        let mapped = mapped ?? mapNorm.recomputeOutput()
        self.mapped = nil
        let dMapped = reduceConv.backward(dReduced, input: mapped, inputGradient: true, workspace: workspace)!
        ready(reduceConv.weight)
        let dConcatenated = mapNorm.backward(dMapped)
        ready(mapNorm.weight); ready(mapNorm.bias)
        let body = body ?? bodyNorm.recomputeOutput()
        self.body = nil
        let n = body.shape[0], hw = shape.headWidth
        let dBody = Tensor(uninitialized: body.shape)
        globalAveragePoolBackward(dInput: dBody, dOutput: dPooled.reshaped([n, body.shape[1]]))
        let dBranch = Tensor(uninitialized: [n, hw, body.shape[2], body.shape[3]])
        for (j, conv) in mapConvs.enumerated().reversed() {
            channelSlice(dBranch, of: dConcatenated, first: j * hw)
            conv.backward(dBranch, input: body, addingInputGradientTo: dBody, workspace: workspace)
            ready(conv.weight)
        }
        return dBody
    }

    public func forwardMultiplyAdds(height: Int, width: Int) -> Double {
        let body = backbone.multiplyAdds(height: height, width: width)
        var total = body.count
        for conv in mapConvs + [reduceConv, classifier] { total += conv.multiplyAdds(height: body.height, width: body.width).count }
        for conv in [poolConv, poolReduceConv] { total += conv.multiplyAdds(height: 1, width: 1).count }
        return total
    }
}

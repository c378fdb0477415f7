import ABNData
import ABNLayers

/// `model.arch`: the networks `abn` builds. Each names the task it serves, the stage widths and
/// output strides it accepts, and its builder; adding a network is a case here and its file in
/// ABNLayers.
public enum Architecture: String, ConfigChoice {
    /// A pre-activation ResNet classifier (`PreActResNet`).
    case resnet
    /// DeepLabV3 with an ASPP head over a dilated pre-activation ResNet (`DeepLab`).
    case deeplab
    /// torchvision's ResNet classifiers (`ResNetClassifier`).
    case resnet18, resnet34, resnet50, resnet101
    /// torchvision's DeepLabV3 over the ResNet `model.backbone` (`DeepLabV3`).
    case deeplabv3

    /// The task of the data sets it trains on.
    public var task: TaskKind {
        switch self {
        case .resnet, .resnet18, .resnet34, .resnet50, .resnet101: .classification
        case .deeplab, .deeplabv3: .segmentation
        }
    }

    /// The torchvision depth of a classifier.
    private var depth: ResNetDepth? { ResNetDepth(rawValue: rawValue) }

    /// The number of stage widths (`model.widths`) it needs, nil for any from one to eight.
    var stages: Int? { self == .deeplab ? 4 : nil }

    /// The output strides `model.output_stride` may take.
    var outputStrides: [Int] {
        switch self {
        case .deeplab: [4, 8, 16]
        case .deeplabv3: [8, 16]
        default: [4, 8, 16]  // not used by classifiers
        }
    }

    /// The keys that size the network.
    var sizeKeys: String {
        switch self {
        case .resnet: "model.widths, model.blocks"
        case .deeplab: "model.widths, model.blocks, model.head_width"
        case .resnet18, .resnet34, .resnet50, .resnet101: "model.base_width"
        case .deeplabv3: "model.base_width, model.head_width"
        }
    }

    /// The network of `config.model` for `input`, with initial weights from `seed`.
    func build(_ config: TrainingConfig, input: ModelInput, norm: NormSettings, seed: UInt64) throws -> any Network {
        let m = config.model
        switch self {
        case .resnet:
            let shape = NetworkShape(widths: m.widths, blocks: m.stageBlocks, inChannels: input.channels, classes: input.classes)
            return try PreActResNet(shape: shape, norm: norm, seed: seed)
        case .deeplab:
            let shape = DeepLabShape(inChannels: input.channels, widths: m.widths, blocks: m.stageBlocks, outputStride: m.outputStride,
                                     headWidth: m.headWidth > 0 ? m.headWidth : 64,
                                     dilations: m.asppDilations.isEmpty ? [2, 4, 6] : m.asppDilations, classes: input.classes)
            return try DeepLab(shape: shape, norm: norm, seed: seed)
        case .resnet18, .resnet34, .resnet50, .resnet101:
            let shape = ResNetShape(depth: depth!, baseWidth: m.baseWidth, inChannels: input.channels, classes: input.classes)
            return try shape.classifier(norm: norm, seed: seed)
        case .deeplabv3:
            return try deepLabV3Shape(m, input: input).network(norm: norm, seed: seed)
        }
    }

    /// The DeepLabV3 shape of `model` for `input`.
    private func deepLabV3Shape(_ m: TrainingConfig.Model, input: ModelInput) -> DeepLabV3Shape {
        DeepLabV3Shape(backbone: m.backbone, baseWidth: m.baseWidth, inChannels: input.channels,
                       outputStride: m.outputStride, headWidth: m.headWidth > 0 ? m.headWidth : 256,
                       dilations: m.asppDilations.isEmpty ? nil : m.asppDilations, dropout: Float(m.dropout), classes: input.classes)
    }
}

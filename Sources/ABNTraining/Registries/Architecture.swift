import ABNData
import ABNLayers

/// `model.arch`: the networks `abn` builds. Each names the task it serves, the stage widths it
/// needs, its builder and a rough parameter count; adding a network is a case here and its
/// file in ABNLayers.
public enum Architecture: String, CaseIterable, Sendable {
    /// A pre-activation ResNet classifier (`PreActResNet`).
    case resnet
    /// DeepLabV3 with an ASPP head over a dilated pre-activation ResNet (`DeepLab`).
    case deeplab

    /// The task of the data sets it trains on.
    public var task: TaskKind {
        switch self {
        case .resnet: .classification
        case .deeplab: .segmentation
        }
    }

    /// The number of stage widths it needs, nil for any from one to eight.
    var stages: Int? {
        switch self {
        case .resnet: nil
        case .deeplab: 4
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
                                     headWidth: m.headWidth, dilations: m.asppDilations, classes: input.classes)
            return try DeepLab(shape: shape, norm: norm, seed: seed)
        }
    }

    /// About how many weights the head of `model` adds to the body (in Double, so that absurd
    /// widths cannot overflow); `body` is the last stage's width.
    func estimatedHeadParameters(_ model: TrainingConfig.Model, body: Double) -> Double {
        let head = Double(model.headWidth)
        switch self {
        case .resnet: return body * 255
        case .deeplab: return body * head * 29 + 4 * head * head + head * head * 2 + head * 255
        }
    }
}

extension TrainingConfig.Model {
    /// `arch` parsed (validated by `TrainingConfig.validate`).
    public var architecture: Architecture { Architecture(rawValue: arch)! }
}

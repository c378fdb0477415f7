import ABNData
import ABNLayers

/// What the data gives the model: input channels, classes and the task.
public struct ModelInput: Sendable, Equatable {
    public var channels: Int
    public var classes: Int
    public var task: TaskKind

    public init(channels: Int, classes: Int, task: TaskKind) {
        self.channels = channels
        self.classes = classes
        self.task = task
    }

    /// The input of a data source.
    public init(_ data: DataSource) {
        self.init(channels: data.channels, classes: data.classNames.count, task: data.task)
    }

    /// The input of the set `config.data.generate` makes, known without making it (as
    /// `DataSource` would read it: `data.channels` and `model.classes` win when set); nil when
    /// the config makes no set that a segmentation folder reads.
    public init?(generatedBy config: TrainingConfig) {
        guard config.data.generate.kind == "fmnist-scenes", config.data.format == "segmentation-folder" else { return nil }
        self.init(channels: config.data.channels > 0 ? config.data.channels : FashionMNISTScenes.channels,
                  classes: config.model.classes > 0 ? config.model.classes : FashionMNISTScenes.classNames.count, task: .segmentation)
    }
}

extension TrainingConfig {
    /// The network `model` describes for `input`, with its initial weights from `model.init_seed`.
    public func makeNetwork(_ input: ModelInput) throws -> any Network {
        let norm = try normSettings()
        let seed = UInt64(model.initSeed)
        switch model.arch {
        case "deeplab":
            guard input.task == .segmentation else {
                throw TrainingError("model.arch deeplab is a segmentation network, but \(data.root) is a \(input.task.rawValue) set; use model.arch resnet or a segmentation-folder data set.")
            }
            let shape = DeepLabShape(inChannels: input.channels, widths: model.widths, blocksPerStage: model.blocksPerStage,
                                     outputStride: model.outputStride, headWidth: model.headWidth,
                                     dilations: model.asppDilations, classes: input.classes)
            return try DeepLab(shape: shape, norm: norm, seed: seed)
        default:
            guard input.task == .classification else {
                throw TrainingError("model.arch resnet is a classifier, but \(data.root) is a segmentation set; use model.arch deeplab.")
            }
            let shape = NetworkShape(widths: model.widths, blocksPerStage: model.blocksPerStage, inChannels: input.channels, classes: input.classes)
            return try PreActResNet(shape: shape, norm: norm, seed: seed)
        }
    }
}

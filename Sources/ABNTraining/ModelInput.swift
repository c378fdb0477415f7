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
        guard config.data.generate.kind == "fmnist-scenes", config.data.layout == .segmentationFolder else { return nil }
        self.init(channels: config.data.channels > 0 ? config.data.channels : FashionMNISTScenes.channels,
                  classes: config.model.classes > 0 ? config.model.classes : FashionMNISTScenes.classNames.count, task: .segmentation)
    }
}

extension TrainingConfig {
    /// The network `model` describes for `input`, with its initial weights from `model.init_seed`.
    public func makeNetwork(_ input: ModelInput) throws -> any Network {
        let architecture = model.architecture
        guard input.task == architecture.task else {
            let fitting = Architecture.allCases.filter { $0.task == input.task }.map(\.rawValue).joined(separator: " or ")
            throw TrainingError("model.arch \(model.arch) is a \(architecture.task.rawValue) network, but \(data.root) is a \(input.task.rawValue) set; "
                                + "use model.arch \(fitting), or a \(architecture.task.rawValue) data set.")
        }
        return try architecture.build(self, input: input, norm: try normSettings(), seed: UInt64(model.initSeed))
    }
}

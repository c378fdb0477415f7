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
        guard config.data.generate.kind == .fmnistScenes, config.data.format.readsGeneratedScenes else { return nil }
        self.init(channels: config.data.channels > 0 ? config.data.channels : FashionMNISTScenes.channels,
                  classes: config.model.classes > 0 ? config.model.classes : FashionMNISTScenes.classNames.count, task: config.data.format.task)
    }

    /// The input of the network `config.model` describes whose weights `checkpoint` holds, from
    /// their shapes alone (no data set): the channels of its first parameter, the input
    /// convolution's weight (out, channels, kh, kw), and the classes of its last, the output
    /// layer's bias or weight (classes first). The network is declared once with placeholder sizes
    /// to learn those parameters' names.
    public init(checkpoint: Checkpoint, config: TrainingConfig) throws {
        let task = config.model.arch.task
        let names = try ParameterStore.$declaredOnly.withValue(true) {
            try config.makeNetwork(ModelInput(channels: 3, classes: 2, task: task)).parameters.parameters.map(\.name)
        }
        guard let first = names.first, let last = names.last, let input = checkpoint.entries[first], let output = checkpoint.entries[last],
              input.shape.count == 4, !output.shape.isEmpty else {
            throw TrainingError("\(checkpoint.source) holds no tensors \(names.first ?? "?") and \(names.last ?? "?") of the shapes of a model.arch \(config.model.arch) "
                                + "network; give the config it was trained with (--config).")
        }
        guard [1, 3].contains(input.shape[1]) else {
            throw TrainingError("\(checkpoint.source): \(first) takes \(input.shape[1]) input channels; images have 1 (gray) or 3 (RGB).")
        }
        guard (2...255).contains(output.shape[0]) else {
            throw TrainingError("\(checkpoint.source): \(last) has \(output.shape[0]) classes; a network has 2 to 255.")
        }
        self.init(channels: input.shape[1], classes: output.shape[0], task: task)
    }
}

extension TrainingConfig {
    /// The network `model` describes for `input`, with its initial weights from `model.init_seed`.
    public func makeNetwork(_ input: ModelInput) throws -> any Network {
        let architecture = model.arch
        guard input.task == architecture.task else {
            let fitting = Architecture.allCases.filter { $0.task == input.task }.map(\.rawValue).joined(separator: " or ")
            throw TrainingError("model.arch \(model.arch) is a \(architecture.task.rawValue) network, but \(data.root) is a \(input.task.rawValue) set; "
                                + "use model.arch \(fitting), or a \(architecture.task.rawValue) data set.")
        }
        return try architecture.build(self, input: input, norm: try normSettings(), seed: UInt64(model.initSeed))
    }

    /// The trainable parameters of the network `model` describes for `input`, counted on its
    /// declared layers: their values are not allocated.
    public func parameterCount(_ input: ModelInput) throws -> Int {
        try ParameterStore.$declaredOnly.withValue(true) { try makeNetwork(input).parameters.parameterCount }
    }
}

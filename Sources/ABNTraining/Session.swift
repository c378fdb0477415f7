import ABNComm
import ABNData

/// What `abn train`, `eval` and `verify` set up alike from a config on the current ranks: the
/// data set, made where missing (rank 0 first) and opened, its two loaders and what it gives the
/// model; and the replicas built on it.
public struct Session {
    public let config: TrainingConfig
    public let coordinator: Coordinator
    public let data: DataSource
    /// Channels, classes and task of the data.
    public let input: ModelInput
    /// The training and test splits through the data's sample pipeline.
    public let train, test: BatchLoader

    /// Makes the data set when the config generates it and it is missing (showing `progress`
    /// on rank 0), then opens it.
    public init(config: TrainingConfig, coordinator: Coordinator, progress: ProgressStyle = .auto) throws {
        self.config = config
        self.coordinator = coordinator
        try coordinator.prepareData(config, progress: progress)
        data = try DataSource(config: config)
        input = ModelInput(data)
        train = BatchLoader(dataset: data.train, pipeline: data.pipeline)
        test = BatchLoader(dataset: data.test, pipeline: data.pipeline)
    }

    /// A replica of the config's network with its initial weights, on `comm` (default: the
    /// job's ranks); `sync` overrides `model.sync`.
    public func replica(comm: Communicator? = nil, sync: Replica.Synchronization? = nil) throws -> Replica {
        try Replica(config: config, input: input, comm: comm ?? coordinator.comm, sync: sync)
    }
}

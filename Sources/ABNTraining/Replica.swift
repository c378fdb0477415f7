import ABNComm
import ABNData
import ABNLayers
import ABNTensor

/// One rank's replica of the model and what a data-parallel training step needs: the
/// network, SGD, the cross-rank batch statistics (when synchronized) and gradient averaging.
public final class Replica {
    public let comm: Communicator
    public let net: any Network
    /// What the network learns: the loss and its normalizer, the metrics.
    public let task: any Task
    public let optimizer: SGD
    public let averager: GradientAverager
    /// The norm layers' reducer when batch statistics are synchronized across ranks.
    public let statistics: SynchronizedStatistics?

    /// Which norm layers merge their statistics across ranks.
    public enum Synchronization: Sendable {
        /// Every norm layer (the default with `model.sync`).
        case all
        /// None: each rank normalizes its own slice.
        case none
        /// Only the layers that see one value per image (`Network.perImageNormLayers`), which
        /// a rank of one image cannot normalize alone: a negative control for such slices.
        case perImageOnly
    }

    /// Builds the network of `config` for `input` (channels, classes, task) with its initial
    /// weights; `sync` overrides `model.sync`.
    public init(config: TrainingConfig, input: ModelInput, comm: Communicator, sync: Synchronization? = nil) throws {
        self.comm = comm
        task = input.task.implementation
        net = try config.makeNetwork(input)
        optimizer = SGD(net.parameters, settings: config.sgdSettings)
        let mode = comm.size > 1 ? sync ?? (config.model.sync ? .all : .none) : .none
        let synchronizedLayers = mode == .all ? net.normLayers : mode == .perImageOnly ? net.perImageNormLayers : []
        statistics = synchronizedLayers.isEmpty ? nil : SynchronizedStatistics(comm)
        if let statistics { for layer in synchronizedLayers { layer.reducer = statistics } }
        averager = GradientAverager(net.parameters, comm: comm, bucketBytes: config.train.bucketKib * 1024,
                                    overlap: config.train.overlap && (MPICommunicator.threadMultiple ?? false))
        let averager = averager
        net.gradientsReady = { averager.parameterReady($0) }
    }

    /// One step on this rank's slice (`batch`, n samples; n may be 0) of a global batch of
    /// `globalBatch` samples: forward, the loss over the task's global normalizer (so that the
    /// ranks' gradients add up to the gradient of the global mean), backward with gradient
    /// averaging, SGD at `learningRate`. `drawKeys` (one per sample, `Replica.drawKeys`) key the
    /// samples' random draws (dropout). Returns the mean loss over the global batch.
    public func step(_ batch: Batch, drawKeys: [UInt64] = [], globalBatch: Int, learningRate: Float) throws -> (loss: Double, timings: StepTimings) {
        let t0 = monotonicSeconds()
        statistics?.resetTimer()
        net.training = true
        var loss = [0.0]
        averager.begin()
        let normalizer = task.lossNormalizer(batch, globalBatch: globalBatch, comm: comm)
        if batch.count == 0 && statistics == nil {
            // nothing to compute, and no collective inside the layers to take part in
            net.parameters.gradients.zero()
            for p in net.parameters.parameters.reversed() { averager.parameterReady(p) }
        } else {
            net.setDrawKeys(drawKeys)
            let logits = try net.forward(batch.images)
            let dLogits = Tensor(uninitialized: logits.shape)
            loss[0] = task.loss(logits: logits, batch: batch, normalizer: normalizer, dLogits: dLogits)
            net.backward(dLogits)
        }
        averager.finish()
        optimizer.settings.learningRate = learningRate
        optimizer.step()
        comm.allreduceSum(&loss, count: 1, what: "the loss")
        var timings = StepTimings()
        timings.total = monotonicSeconds() - t0
        timings.normSynchronization = statistics?.seconds ?? 0
        timings.exposedGradientAveraging = averager.exposedSeconds
        return (loss[0], timings)
    }

    /// The keys of the random draws of the samples at `positions` of step `step`'s global batch:
    /// each depends only on the run's seed, the step and the sample's position, so a sample draws
    /// the same however the batch is split over ranks.
    public static func drawKeys(seed: Int, step: Int, positions: some Sequence<Int>) -> [UInt64] {
        positions.map { mixSeed(UInt64(seed), 0x4452_4F50, UInt64(step), UInt64($0)) }
    }
}

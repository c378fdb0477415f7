import ABNComm
import ABNLayers
import ABNTensor

/// Timings of one data-parallel training step, in seconds.
public struct StepTimings: Sendable {
    /// The whole step.
    public var total = 0.0
    /// Inside the norm layers' collectives (batch statistics and backward sums).
    public var normSynchronization = 0.0
    /// Waiting for gradient averaging after backward (the part not hidden behind it).
    public var exposedGradientAveraging = 0.0
    /// The rest: forward, backward, optimizer.
    public var compute: Double { total - normSynchronization - exposedGradientAveraging }
}

/// One rank's replica of the model and what a data-parallel training step needs: the
/// network, SGD, the cross-rank batch statistics (when synchronized) and gradient averaging.
public final class Replica {
    public let comm: Communicator
    public let net: PreActResNet
    public let optimizer: SGD
    public let averager: GradientAverager
    /// The norm layers' reducer when batch statistics are synchronized across ranks.
    public let statistics: SynchronizedStatistics?

    /// Builds the network of `config` with its initial weights; `sync` overrides `model.sync`.
    public init(config: TrainingConfig, comm: Communicator, sync: Bool? = nil) throws {
        self.comm = comm
        net = try PreActResNet(shape: config.networkShape, norm: try config.normSettings(), seed: UInt64(config.model.initSeed))
        optimizer = SGD(net.parameters, settings: config.sgdSettings)
        let synchronized = (sync ?? config.model.sync) && comm.size > 1
        statistics = synchronized ? SynchronizedStatistics(comm) : nil
        if let statistics { net.setReducer(statistics) }
        averager = GradientAverager(net.parameters, comm: comm, bucketBytes: config.train.bucketKib * 1024,
                                    overlap: config.train.overlap && (MPICommunicator.threadMultiple ?? false))
        let averager = averager
        net.gradientsReady = { averager.parameterReady($0) }
    }

    /// One step on this rank's slice (images (n, C, H, W), n labels; n may be 0) of a global
    /// batch of `globalBatch` samples: forward, loss scaled by 1/globalBatch, backward with
    /// gradient averaging, SGD at `learningRate`. Returns the mean loss over the global batch.
    public func step(images: Tensor, labels: [Int], globalBatch: Int, learningRate: Float) throws -> (loss: Double, timings: StepTimings) {
        let t0 = monotonicSeconds()
        statistics?.resetTimer()
        net.training = true
        var loss = [0.0]
        averager.begin()
        if labels.isEmpty && statistics == nil {
            // nothing to compute, and no collective inside the layers to take part in
            net.parameters.gradients.zero()
            for p in net.parameters.parameters.reversed() { averager.parameterReady(p) }
        } else {
            let logits = try net.forward(images)
            let dLogits = Tensor(uninitialized: logits.shape)
            loss[0] = softmaxCrossEntropy(dLogits: dLogits, logits: logits, labels: labels, normalizer: Double(globalBatch))
            net.backward(dLogits)
        }
        averager.finish()
        optimizer.settings.learningRate = learningRate
        optimizer.step()
        comm.allreduceSum(&loss, count: 1)
        var timings = StepTimings()
        timings.total = monotonicSeconds() - t0
        timings.normSynchronization = statistics?.seconds ?? 0
        timings.exposedGradientAveraging = averager.exposedSeconds
        return (loss[0], timings)
    }
}

import ABNComm
import ABNData
import ABNTensor
import Foundation

/// The steps of one `abn train` run, from where it starts to its last step: one method for
/// each job of the loop (a step, a metrics line, an evaluation, a checkpoint, the stop
/// agreement) and the loop that calls them. `Trainer.run` builds it once the replica holds the
/// run's state. Rank 0 alone writes files and shows progress.
final class TrainingLoop {
    /// What the loop works with, set up by `Trainer.run`.
    struct Parts {
        let config: TrainingConfig
        let coordinator: Coordinator
        let session: Session
        let replica: Replica
        let batches: GlobalBatches
        let slices: BatchSlices
        let schedule: LearningRateSchedule
        let checkpoints: CheckpointDirectory
        let metrics: MetricsLog?
        let progress: TrainingProgress?
        let gemm: GEMMSelection
        /// Steps of the whole run, and the step this process stops at.
        let totalSteps, lastStep: Int
    }

    private let p: Parts
    private var comm: Communicator { p.coordinator.comm }
    /// Steps done.
    private var step: Int
    /// Whether the next step's products are recorded for `train.gemm: auto`.
    private var choosingProducts: Bool
    private var permutation: [Int] = [], permutationEpoch = -1
    /// Since the last metrics line: summed losses, steps, start (s), summed timings.
    private var window = (loss: 0.0, steps: 0, start: monotonicSeconds())
    private var timings = StepTimings()

    init(_ parts: Parts, step: Int, choosingProducts: Bool) {
        p = parts
        self.step = step
        self.choosingProducts = choosingProducts
    }

    /// Runs the steps; a stop request of any rank ends the loop after the current step (with a
    /// checkpoint) or before the first one.
    func run() throws -> Trainer.Outcome {
        defer { RunContext.process.step = -1 }
        if let signal = agreedStop() { return .stoppedBeforeStart(signal: signal, step: step) }
        while step < p.lastStep {
            let rate = try trainStep()
            let endOfEpoch = step % p.batches.stepsPerEpoch == 0
            if step % p.config.train.logEvery == 0 || step == p.lastStep || endOfEpoch { try log(rate: rate) }
            let evaluationEpoch = endOfEpoch && (step / p.batches.stepsPerEpoch) % p.config.train.evaluateEvery == 0
            if (evaluationEpoch || step == p.totalSteps) && p.config.train.evaluate { try evaluate() }
            let checkpointDue = step == p.lastStep || (p.config.checkpoint.every > 0 && step % p.config.checkpoint.every == 0)
            if checkpointDue { try saveCheckpoint() }
            if step < p.lastStep, let signal = agreedStop() {
                if !checkpointDue { try saveCheckpoint() }
                p.progress?.finish()
                return .stopped(signal: signal, step: step)
            }
        }
        p.progress?.finish()
        return .finished
    }

    /// This rank's sample indices at `step`, and the step's epoch.
    private func slice(_ step: Int) -> (indices: [Int], epoch: Int) {
        let epoch = p.batches.epoch(ofStep: step)
        if epoch != permutationEpoch { permutation = p.batches.permutation(epoch: epoch); permutationEpoch = epoch }
        return (Array(p.batches.batch(step: step, permutation: permutation)[p.slices.range(rank: comm.rank)]), epoch)
    }

    /// One training step (the next step's batch prefetched meanwhile); returns its learning rate.
    private func trainStep() throws -> Float {
        RunContext.process.step = step
        let (indices, epoch) = slice(step)
        let batch = try p.session.train.batch(indices, epoch: epoch)
        if step + 1 < p.lastStep {
            let next = slice(step + 1)
            p.session.train.prefetch(next.indices, epoch: next.epoch)  // decoded while this step computes
        }
        let rate = p.schedule.rate(step: step)
        var (loss, t) = (0.0, StepTimings())
        let products = try BLAS.recordingShapes(when: choosingProducts) {
            let keys = Replica.drawKeys(seed: p.config.train.seed, step: step, positions: p.slices.range(rank: comm.rank))
            (loss, t) = try p.replica.step(batch, drawKeys: keys, globalBatch: p.config.train.globalBatch, learningRate: rate)
        }
        if choosingProducts {
            try p.gemm.choose(products)
            choosingProducts = false
        }
        guard loss.isFinite else {
            throw TrainingError("the loss became \(loss) at step \(step); lower train.lr (now \(p.config.train.lr)) or raise train.warmup_steps.")
        }
        step += 1
        window.loss += loss; window.steps += 1
        timings.total += t.total; timings.normSynchronization += t.normSynchronization
        timings.exposedGradientAveraging += t.exposedGradientAveraging
        p.progress?.stepped(to: step, loss: window.loss / Double(window.steps))
        return rate
    }

    /// The metrics line of the steps since the last one.
    private func log(rate: Float) throws {
        let steps = Double(window.steps)
        let line: [String: Any] = [
            "step": step, "epoch": Double(step) / Double(p.batches.stepsPerEpoch), "loss": window.loss / steps,
            "lr": Double(rate), "images_per_s": steps * Double(p.config.train.globalBatch) / (monotonicSeconds() - window.start),
            "step_s": timings.total / steps, "norm_sync_s": timings.normSynchronization / steps,
            "exposed_grad_avg_s": timings.exposedGradientAveraging / steps,
        ]
        try p.metrics?.append(line)
        p.progress?.logged(line)
        window = (0, 0, monotonicSeconds())
        timings = StepTimings()
    }

    /// Test metrics, logged and shown. Without synchronized statistics every rank uses rank 0's
    /// running statistics (the ones the checkpoint keeps; each rank's own differ), and gets its
    /// own back afterwards.
    private func evaluate() throws {
        let buffers = p.replica.net.parameters.bufferValues
        let own = !p.config.model.sync && comm.size > 1 ? buffers.array : nil
        if own != nil { comm.broadcast(buffers, what: "rank 0's running statistics for evaluation") }
        defer { own?.withUnsafeBufferPointer { buffers.data.update(from: $0.baseAddress!, count: $0.count) } }
        let result = try ABNTraining.evaluate(p.replica, loader: p.session.test, pixels: p.config.evaluationPixels(ranks: comm.size),
                                              inference: p.config.inference(ranks: comm.size))
        let epoch = Double(step) / Double(p.batches.stepsPerEpoch)
        var line: [String: Any] = ["step": step, "epoch": epoch]
        line.merge(result.jsonFields) { $1 }
        try p.metrics?.append(line)
        p.progress?.evaluated(result, step: step, epoch: epoch)
        window.start = monotonicSeconds()
    }

    /// Rank 0 writes the checkpoint of `step`.
    private func saveCheckpoint() throws {
        guard p.coordinator.isRoot else { return }
        let data = try Checkpoint.encode(p.replica, step: step, epoch: p.batches.epoch(ofStep: step),
                                         stepInEpoch: step % p.batches.stepsPerEpoch, config: p.config)
        try p.checkpoints.write(data, step: step, keep: p.config.checkpoint.keep)
        p.progress?.note("checkpoint \(p.checkpoints.file(step: step))")
    }

    /// The stop request of any rank (the largest code), on every rank: all stop at the same point.
    private func agreedStop() -> Int32? {
        var request = [Double(StopRequest.received)]
        comm.allreduceMax(&request, count: 1, what: "the stop requests")
        return request[0] > 0 ? Int32(request[0]) : nil
    }
}

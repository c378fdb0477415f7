import ABNComm
import ABNData
import ABNLayers
import ABNTensor
import Foundation

/// `abn train`: the data-parallel training loop of a config, with metrics, evaluation at each
/// epoch end, checkpoints and exact resume. Rank 0 alone writes files.
public final class Trainer {
    public let config: TrainingConfig
    public let runDirectory: String
    private let coordinator: Coordinator
    /// How rank 0 shows progress.
    private let progressStyle: ProgressStyle
    private var comm: Communicator { coordinator.comm }

    public init(config: TrainingConfig, runDirectory: String, coordinator: Coordinator, progress: ProgressStyle = .auto) {
        self.config = config
        self.runDirectory = runDirectory
        self.coordinator = coordinator
        progressStyle = progress
    }

    /// How a run ended.
    public enum Outcome: Equatable {
        /// At its last step (or at `stopAfterStep`).
        case finished
        /// Asked to stop by `signal` (a `StopRequest`); the checkpoint of `step` was written.
        case stopped(signal: Int32, step: Int)
        /// Asked to stop by `signal` before the first step, at `step` (where it started): nothing to save.
        case stoppedBeforeStart(signal: Int32, step: Int)
    }

    /// Trains until the end of the last epoch or `train.max_steps`, from the newest valid
    /// checkpoint when `resume` is set. `stopAfterStep` ends the run early at that step, with a
    /// checkpoint, as an interruption would (the schedule still spans the whole run). A
    /// `StopRequest` on any rank ends it after the current step, with a checkpoint, or before
    /// the first step when it came during start-up. On resume,
    /// a config that changes the run is refused unless `allowConfigChange`. A run that starts
    /// from step 0 takes its initial weights from `model.pretrained` when set (`PretrainedWeights`).
    @discardableResult
    public func run(resume: Bool, stopAfterStep: Int? = nil, allowConfigChange: Bool = false) throws -> Outcome {
        let checkpoints = CheckpointDirectory(runDirectory: runDirectory)
        var resumable: Checkpoint?
        if coordinator.isRoot {
            if !resume, let newest = checkpoints.list().first {
                throw TrainingError("\(runDirectory) holds checkpoints of an earlier run (the newest is at step \(newest.step)); continue it with --resume, or start afresh in another directory with --run-dir DIR (or remove \(checkpoints.path)).")
            }
            for name in checkpoints.removeStaleTemporaries() { coordinator.say("train: removed \(name), left by an interrupted checkpoint write") }
            if resume { resumable = try newestValidCheckpoint(checkpoints) }
        }
        let session = try Session(config: config, coordinator: coordinator, progress: progressStyle)
        let data = session.data
        let batches = try GlobalBatches(samples: data.train.count, globalBatch: config.train.globalBatch, seed: UInt64(config.train.seed))
        let slices = BatchSlices(even: config.train.globalBatch, ranks: comm.size)
        var totalSteps = config.train.epochs * batches.stepsPerEpoch
        if config.train.maxSteps > 0 { totalSteps = min(totalSteps, config.train.maxSteps) }
        let schedule = config.schedule(totalSteps: totalSteps)
        // before building the replica: its set-up makes collectives that would hang ranks that disagree
        try coordinator.requireAgreement("config", try config.yaml())
        let replica = try session.replica()
        try coordinator.requireAgreement("model size", String(replica.net.parameters.parameterCount))
        if coordinator.isRoot, resumable == nil, !config.model.pretrained.isEmpty {
            let file = try PretrainedWeights.read(config.model.pretrained)
            coordinator.say("train: " + (try PretrainedWeights(file, into: replica.net)).summary)
            if let warning = file.epsWarning(config) { coordinator.say("train: warning: " + warning) }
        }
        coordinator.broadcastInitialState(replica.net.parameters)

        var step = 0
        if resume { step = try restore(replica, from: resumable, allowConfigChange: allowConfigChange) }
        resumable = nil  // its tensors are in the replica now
        guard step <= totalSteps else {
            throw TrainingError("the checkpoint is at step \(step), beyond this run's \(totalSteps) steps; resume with the config it was written with, or start afresh in another run directory.")
        }
        let metrics = try coordinator.isRoot ? MetricsLog(runDirectory: runDirectory, config: config, continuingAfter: step) : nil
        let lastStep = min(totalSteps, stopAfterStep ?? totalSteps)
        if step >= lastStep {
            coordinator.say("train: nothing to do, the run is at step \(step) of \(lastStep).")
            return .finished
        }
        coordinator.say("train: \(comm.size) rank(s) x \(Parallel.threadCount) thread(s), \(VectorLevel.summary), global batch \(config.train.globalBatch) "
                        + "(\(slices.counts.map(String.init).joined(separator: "+"))), \(batches.stepsPerEpoch) steps per epoch, "
                        + "steps \(step)..<\(lastStep) of \(totalSteps), norm \(config.model.norm.rawValue)\(config.model.sync ? " synchronized" : ""), "
                        + "\(replica.net.parameters.parameterCount) parameters; run directory \(runDirectory)")
        if config.train.gemm == .openblas, let warning = BLAS.openBLASFallbackWarning { coordinator.say(warning) }
        coordinator.say("train: \(data.task.rawValue) of \(data.train.count) images (\(data.channels) channel(s), \(data.classNames.count) classes) from \(config.data.root); model \(replica.net.summary)")
        let gemm = GEMMSelection(config: config, runDirectory: runDirectory, coordinator: coordinator)
        let choosingProducts = try gemm.prepare(resume: resume)
        let progress = coordinator.isRoot ? TrainingProgress(style: progressStyle, firstStep: step, lastStep: lastStep, totalSteps: totalSteps,
                                                             stepsPerEpoch: batches.stepsPerEpoch) : nil
        let parts = TrainingLoop.Parts(config: config, coordinator: coordinator, session: session, replica: replica, batches: batches,
                                       slices: slices, schedule: schedule, checkpoints: checkpoints, metrics: metrics, progress: progress,
                                       gemm: gemm, totalSteps: totalSteps, lastStep: lastStep)
        return try TrainingLoop(parts, step: step, choosingProducts: choosingProducts).run()
    }

    /// The checkpoint `--resume` continues from (rank 0): the newest valid one, after saying
    /// which newer ones it skips; nil when there is none at all. Checkpoints of which none is
    /// valid are refused, so that a fresh start never overwrites them.
    private func newestValidCheckpoint(_ checkpoints: CheckpointDirectory) throws -> Checkpoint? {
        let (found, skipped) = checkpoints.newestValid()
        if found == nil && !skipped.isEmpty {
            throw TrainingError("--resume found checkpoints in \(checkpoints.path), but none is valid:\n  " + skipped.joined(separator: "\n  ")
                                + "\nThey are left as they are. To start afresh, give another run directory with --run-dir DIR, or remove them ("
                                + (["rm"] + checkpoints.list().map(\.path)).joined(separator: " ") + ") and run without --resume.")
        }
        for reason in skipped { coordinator.say("train: skipping a checkpoint: \(reason)") }
        if found == nil { coordinator.say("train: --resume found no checkpoint in \(checkpoints.path); starting from step 0") }
        return found
    }

    /// Gives every rank the state of rank 0's checkpoint `found` (nil: none, the run starts
    /// afresh); returns the step to continue from.
    private func restore(_ replica: Replica, from found: Checkpoint?, allowConfigChange: Bool) throws -> Int {
        var step: Int64 = 0
        if coordinator.isRoot {
            if let found {
                let stored = try TrainingConfig.parse(yaml: found.metadata["config"] ?? "", source: "the config stored in \(found.source)")
                let changes = try config.runChanges(from: stored)
                if !changes.isEmpty && !allowConfigChange {
                    throw TrainingError("the config differs from the one \(found.source) was trained with, in ways that change the run:\n  "
                                        + changes.joined(separator: "\n  ")
                                        + "\nResume with the same config and --set options, or pass --allow-config-change to continue with the new values.")
                }
                for change in changes { coordinator.say("train: continuing with a changed config (--allow-config-change): \(change)") }
                try found.apply(to: replica)
                step = Int64(found.step)
                coordinator.say("train: resuming from \(found.source) (step \(found.step), written by \(found.metadata["world_size"] ?? "?") rank(s))")
            }
        }
        comm.broadcast(&step, bytes: 8, root: 0, what: "the step to resume from")
        comm.broadcast(replica.net.parameters.values, what: "the checkpoint's weights")
        comm.broadcast(replica.net.parameters.bufferValues, what: "the checkpoint's running statistics")
        comm.broadcast(replica.optimizer.velocity, what: "the checkpoint's momentum")
        return Int(step)
    }
}

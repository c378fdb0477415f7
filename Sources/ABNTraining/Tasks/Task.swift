import ABNComm
import ABNData
import ABNTensor

/// What a network learns from its data set: the loss of a rank's slice with its global
/// normalizer, the metrics of an evaluation (summed on each rank, then across ranks), random
/// targets for benchmarks, and how evaluation feeds samples. Classification and segmentation
/// implement it; the trainer, evaluation, verify and the benchmarks ask the task, never which
/// one runs.
public protocol Task: Sendable {
    /// The task's name in reports and errors.
    var kind: TaskKind { get }
    /// Whether evaluation feeds whole images, consecutive ones of one size per forward pass
    /// (segmentation), rather than samples of the training size.
    var evaluatesWholeImages: Bool { get }

    /// What the losses of all ranks' slices of a global batch of `globalBatch` samples are divided
    /// by, so that their gradients add up to that of the global mean; may make one collective.
    func lossNormalizer(_ batch: Batch, globalBatch: Int, comm: Communicator) -> Double
    /// The slice's summed loss divided by `normalizer`, with its gradient written to `dLogits`
    /// (shaped like the network's output; nil: the loss alone).
    func loss(logits: Tensor, batch: Batch, normalizer: Double, dLogits: Tensor?) -> Double
    /// A batch of `images` (n, C, H, W) with random targets among `classes`.
    func randomBatch(images: Tensor, classes: Int, rng: inout SplitMix64) -> Batch
    /// Empty evaluation sums of a network with `classes` outputs.
    func metrics(classes: Int) -> any TaskMetrics
    /// The (height, width) of a training sample as `data` sets it; nil when it is the first
    /// training image's.
    func trainingInputSize(_ data: TrainingConfig.DataSettings) -> (height: Int, width: Int)?
    /// How `data`'s samples become network input; `train` is the training split.
    func sampleGeometry(_ data: TrainingConfig.DataSettings, train: any Dataset) throws -> SamplePipeline.Geometry
    /// Whether `model.classes` may be fewer than the classes the data set names (the masks may
    /// use fewer ids than a segmentation set lists).
    var acceptsFewerClasses: Bool { get }
    /// Whether a prediction is a mask of classes per pixel (what `abn predict` writes).
    var predictsMasks: Bool { get }
}

/// An evaluation's sums on one rank, then over all ranks, and the result they give.
public protocol TaskMetrics {
    /// The sums, which the caller reduces across ranks in place.
    var sums: [Double] { get set }
    /// Adds a forward pass's `logits` on `batch`.
    mutating func add(logits: Tensor, batch: Batch)
    /// The metrics of `samples` samples, from the sums.
    func result(samples: Int) -> EvaluationResult
}

extension TaskKind {
    /// The task of this kind: the one place that maps kinds to tasks.
    public var implementation: any Task {
        switch self {
        case .classification: Classification()
        case .segmentation: Segmentation()
        }
    }
}

import ABNComm
import ABNData
import ABNTensor

/// One class per image: softmax cross-entropy over the global batch, accuracy.
public struct Classification: Task {
    public var kind: TaskKind { .classification }
    public var evaluatesWholeImages: Bool { false }
    public var acceptsFewerClasses: Bool { false }
    public var predictsMasks: Bool { false }

    /// `data.image_size`; nil when empty (the first training image's size).
    public func trainingInputSize(_ data: TrainingConfig.DataSettings) -> (height: Int, width: Int)? {
        data.imageSize.isEmpty ? nil : (data.imageSize[0], data.imageSize[1])
    }

    /// Every image resized to the training input size.
    public func sampleGeometry(_ data: TrainingConfig.DataSettings, train: any Dataset) throws -> SamplePipeline.Geometry {
        let size = try trainingInputSize(data) ?? train.imageSize(0)
        return .resized(height: size.height, width: size.width, padding: data.cropPadding)
    }

    public func lossNormalizer(_ batch: Batch, globalBatch: Int, comm: Communicator) -> Double { Double(globalBatch) }

    public func loss(logits: Tensor, batch: Batch, normalizer: Double, dLogits: Tensor?) -> Double {
        softmaxCrossEntropy(dLogits: dLogits, logits: logits, labels: batch.labels, normalizer: normalizer)
    }

    public func randomBatch(images: Tensor, classes: Int, rng: inout SplitMix64) -> Batch {
        Batch(images: images, labels: (0..<images.shape[0]).map { _ in Int(rng.next() % UInt64(classes)) })
    }

    public func metrics(classes: Int) -> any TaskMetrics { Metrics() }

    /// [loss sum, correct predictions].
    struct Metrics: TaskMetrics {
        var sums: [Double] = [0, 0]

        mutating func add(logits: Tensor, batch: Batch) {
            sums[0] += softmaxCrossEntropy(dLogits: nil, logits: logits, labels: batch.labels, normalizer: 1)
            let k = logits.shape[1]
            for (i, label) in batch.labels.enumerated() where argmax(logits.data + i * k, count: k) == label { sums[1] += 1 }
        }

        func result(samples: Int) -> EvaluationResult {
            EvaluationResult(loss: sums[0] / Double(max(1, samples)), accuracy: sums[1] / Double(max(1, samples)), samples: samples,
                             accuracyName: "test accuracy")
        }
    }
}

import ABNComm
import ABNData
import ABNLayers
import ABNTensor
import Foundation

/// Test metrics of a model, reduced over all ranks.
public struct EvaluationResult: Sendable {
    /// Mean loss per sample (classification) or per valid pixel (segmentation).
    public var loss: Double
    /// Fraction of samples or valid pixels predicted right.
    public var accuracy: Double
    /// Samples evaluated.
    public var samples: Int
    /// What `accuracy` counts, for people ("test accuracy", "pixel accuracy").
    public var accuracyName: String
    /// Per class, TP / (TP + FP + FN), nil for a class absent from both the masks and the
    /// predictions; nil for a task without classes per pixel.
    public var classIoU: [Double?]?
    /// The mean of `classIoU` over the classes that have one.
    public var meanIoU: Double?

    public init(loss: Double, accuracy: Double, samples: Int, accuracyName: String, classIoU: [Double?]? = nil, meanIoU: Double? = nil) {
        self.loss = loss
        self.accuracy = accuracy
        self.samples = samples
        self.accuracyName = accuracyName
        self.classIoU = classIoU
        self.meanIoU = meanIoU
    }

    /// The metrics as JSON fields: test_loss, test_accuracy and, where there are IoUs, test_miou
    /// and test_iou (one value per class, null where undefined).
    public var jsonFields: [String: Any] {
        var fields: [String: Any] = ["test_loss": loss, "test_accuracy": accuracy]
        if let meanIoU, let classIoU {
            fields["test_miou"] = meanIoU
            fields["test_iou"] = classIoU.map { $0.map { $0 as Any } ?? NSNull() }
        }
        return fields
    }

    /// One line for people: loss, accuracy and mIoU.
    public var summary: String {
        var text = String(format: "test loss %.4f  %@ %.2f%%", loss, accuracyName, 100 * accuracy)
        if let meanIoU { text += String(format: "  mIoU %.4f", meanIoU) }
        return text
    }
}

/// Evaluates `replica` in eval mode on `loader`'s data set, split evenly across ranks (each
/// rank evaluates its shard; the sums are reduced), `batch` samples at a time. A task that
/// evaluates whole images gets consecutive images of one size per forward pass, at most
/// `pixels` input pixels (at least one image; see `TrainingConfig.evaluationPixels`); the
/// shard's first image is loaded alone, then as many images at a time as `pixels` holds at the
/// size of the previous load's first. With an `inference` other than the plain whole one
/// (sliding windows, scales, flips), such a task's images go through it one at a time instead,
/// the next one loaded while the current one computes. Eval mode makes no collective inside the
/// layers, so shards of different sizes are fine.
public func evaluate(_ replica: Replica, loader: BatchLoader, batch: Int = 100, pixels: Int = .max,
                     inference: Inference? = nil) throws -> EvaluationResult {
    let comm = replica.comm
    let data = loader.dataset
    let shard = BatchSlices(even: data.count, ranks: comm.size).range(rank: comm.rank)
    let wasTraining = replica.net.training
    replica.net.training = false
    defer { replica.net.training = wasTraining }
    let wholeImages = replica.task.evaluatesWholeImages
    var metrics = replica.task.metrics(classes: replica.net.classes)
    if wholeImages, let inference, !inference.isPlainWhole {
        try evaluateOneByOne(replica.net, inference: inference, loader: loader, shard: shard, into: &metrics)
    } else {
        try evaluateInBatches(replica.net, wholeImages: wholeImages, loader: loader, shard: shard, batch: batch, pixels: pixels, into: &metrics)
    }
    metrics.sums.withUnsafeMutableBufferPointer { comm.allreduceSum($0.baseAddress!, count: $0.count, what: "the evaluation sums") }
    return metrics.result(samples: data.count)
}

/// Adds `shard`'s samples to `metrics`: `batch` at a time, or whole images as `evaluate` says.
private func evaluateInBatches(_ net: any Network, wholeImages: Bool, loader: BatchLoader, shard: Range<Int>, batch: Int, pixels: Int,
                               into metrics: inout any TaskMetrics) throws {
    var chunk = wholeImages ? 1 : batch
    var start = shard.lowerBound
    while start < shard.upperBound {
        let indices = Array(start..<min(start + chunk, shard.upperBound))
        let samples = try loader.samples(indices)
        start += indices.count
        if wholeImages { chunk = max(1, min(batch, pixels / max(1, samples[0].image.width * samples[0].image.height))) }
        var first = 0
        while first < samples.count {
            var end = wholeImages ? first + 1 : samples.count
            let area = samples[first].image.width * samples[first].image.height
            while end < samples.count, samples[end].image.width == samples[first].image.width,
                  samples[end].image.height == samples[first].image.height, (end - first + 1) * area <= pixels { end += 1 }
            let group = loader.assemble(Array(samples[first..<end]), indices: Array(indices[first..<end]), epoch: nil)
            metrics.add(logits: try net.forward(group.images), batch: group)
            first = end
        }
    }
}

/// Adds `shard`'s whole images to `metrics` one at a time through `inference`, the next image
/// loaded while the current one computes.
private func evaluateOneByOne(_ net: any Network, inference: Inference, loader: BatchLoader, shard: Range<Int>,
                              into metrics: inout any TaskMetrics) throws {
    for index in shard {
        let image = try loader.batch([index], epoch: nil)
        if index + 1 < shard.upperBound { loader.prefetch([index + 1], epoch: nil) }
        metrics.add(logits: try inference.logits(net, image: image.images), batch: image)
    }
}

extension TrainingConfig {
    /// Input pixels per evaluation forward pass of a segmentation model on `ranks` ranks: what a
    /// training step feeds one rank (its share of `train.global_batch` at `data.crop_size`). A
    /// forward pass keeps at most what a training step does, so evaluating whole images of any
    /// size stays within the memory training needs.
    public func evaluationPixels(ranks: Int) -> Int {
        (train.globalBatch + ranks - 1) / max(1, ranks) * data.cropSize.reduce(1, *)
    }
}

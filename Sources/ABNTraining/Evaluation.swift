import ABNComm
import ABNData
import ABNTensor
import Foundation

/// Test metrics of a model, reduced over all ranks.
public struct EvaluationResult: Sendable {
    /// Mean loss per sample (classification) or per valid pixel (segmentation).
    public var loss: Double
    /// Fraction of samples (classification) or valid pixels (segmentation) predicted right.
    public var accuracy: Double
    /// Samples evaluated.
    public var samples: Int
    /// Segmentation: per class, TP / (TP + FP + FN), nil for a class absent from both the
    /// masks and the predictions.
    public var classIoU: [Double?]?
    /// Segmentation: the mean of `classIoU` over the classes that have one.
    public var meanIoU: Double?

    /// The metrics as JSON fields: test_loss, test_accuracy and, for segmentation, test_miou
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
        var text = String(format: "test loss %.4f  %@ %.2f%%", loss, classIoU == nil ? "test accuracy" : "pixel accuracy", 100 * accuracy)
        if let meanIoU { text += String(format: "  mIoU %.4f", meanIoU) }
        return text
    }
}

/// Evaluates `replica` in eval mode on `loader`'s data set, split evenly across ranks (each
/// rank evaluates its shard; the sums are reduced), `batch` samples at a time. Segmentation
/// works on whole images, batching consecutive images of one size, at most `pixels` input
/// pixels per forward pass (at least one image; see `TrainingConfig.evaluationPixels`), and
/// loads the shard's first image alone, then as many images at a time as `pixels` holds at the
/// size of the previous load's first. Eval mode makes no collective inside the layers, so
/// shards of different sizes are fine.
public func evaluate(_ replica: Replica, loader: BatchLoader, batch: Int = 100, pixels: Int = .max) throws -> EvaluationResult {
    let comm = replica.comm
    let data = loader.dataset
    let shard = BatchSlices(even: data.count, ranks: comm.size).range(rank: comm.rank)
    let wasTraining = replica.net.training
    replica.net.training = false
    defer { replica.net.training = wasTraining }
    let k = replica.net.classes
    let segmentation = data.task == .segmentation
    var sums = [Double](repeating: 0, count: 2 + (segmentation ? k * k : 0))  // loss sum, correct or valid pixels, confusion
    var confusion = [Double](repeating: 0, count: segmentation ? k * k : 0)
    var chunk = segmentation ? 1 : batch
    var start = shard.lowerBound
    while start < shard.upperBound {
        let indices = Array(start..<min(start + chunk, shard.upperBound))
        let samples = try loader.samples(indices)
        start += indices.count
        if segmentation { chunk = max(1, min(batch, pixels / max(1, samples[0].image.width * samples[0].image.height))) }
        var first = 0
        while first < samples.count {
            // segmentation works on whole images: a batch holds consecutive images of one size
            var end = segmentation ? first + 1 : samples.count
            let area = samples[first].image.width * samples[first].image.height
            while end < samples.count, samples[end].image.width == samples[first].image.width,
                  samples[end].image.height == samples[first].image.height, (end - first + 1) * area <= pixels { end += 1 }
            let group = loader.assemble(Array(samples[first..<end]), indices: Array(indices[first..<end]), epoch: nil)
            var logits = try replica.net.forward(group.images)
            if segmentation {
                logits = upsampled(logits, like: group.images)
                sums[0] += pixelCrossEntropy(dLogits: nil, logits: logits, masks: group.masks, ignore: ignoreLabel, normalizer: 1)
                accumulateConfusion(&confusion, logits: logits, masks: group.masks, ignore: ignoreLabel)
            } else {
                sums[0] += softmaxCrossEntropy(dLogits: nil, logits: logits, labels: group.labels, normalizer: 1)
                for (i, label) in group.labels.enumerated() {
                    if argmax(logits.data + i * k, count: k) == label { sums[1] += 1 }
                }
            }
            first = end
        }
    }
    if segmentation { sums.replaceSubrange(2..., with: confusion) }
    sums.withUnsafeMutableBufferPointer { comm.allreduceSum($0.baseAddress!, count: $0.count, what: "the evaluation sums") }
    guard segmentation else {
        return EvaluationResult(loss: sums[0] / Double(max(1, data.count)), accuracy: sums[1] / Double(max(1, data.count)), samples: data.count)
    }
    let matrix = Array(sums[2...])
    let valid = matrix.reduce(0, +)
    var correct = 0.0
    var iou: [Double?] = []
    for c in 0..<k {
        let tp = matrix[c * k + c]
        let fn = (0..<k).reduce(0.0) { $0 + matrix[c * k + $1] } - tp
        let fp = (0..<k).reduce(0.0) { $0 + matrix[$1 * k + c] } - tp
        correct += tp
        iou.append(tp + fp + fn > 0 ? tp / (tp + fp + fn) : nil)
    }
    let defined = iou.compactMap { $0 }
    return EvaluationResult(loss: sums[0] / max(1, valid), accuracy: correct / max(1, valid), samples: data.count,
                            classIoU: iou, meanIoU: defined.isEmpty ? 0 : defined.reduce(0, +) / Double(defined.count))
}

/// Segmentation logits (N, K, h, w) resized bilinearly to the size of images (N, C, H, W).
func upsampled(_ logits: Tensor, like images: Tensor) -> Tensor {
    let output = Tensor(uninitialized: [logits.shape[0], logits.shape[1], images.shape[2], images.shape[3]])
    bilinearUpsampleForward(output: output, input: logits)
    return output
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

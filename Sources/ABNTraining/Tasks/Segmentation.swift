import ABNComm
import ABNData
import ABNTensor

/// One class per pixel: the network's logits (at its output stride) are resized bilinearly to
/// the image; cross-entropy over the valid pixels of the global batch (mask value `ignoreLabel`
/// is ignored); pixel accuracy and the IoU of each class from a confusion matrix.
public struct Segmentation: Task {
    public var kind: TaskKind { .segmentation }
    public var evaluatesWholeImages: Bool { true }
    public var acceptsFewerClasses: Bool { true }
    public var predictsMasks: Bool { true }

    /// `data.crop_size`.
    public func trainingInputSize(_ data: TrainingConfig.DataSettings) -> (height: Int, width: Int)? { (data.cropSize[0], data.cropSize[1]) }

    /// Random crops of `data.crop_size` after a random scale in `data.scale_range` (of
    /// `data.base_size` when given).
    public func sampleGeometry(_ data: TrainingConfig.DataSettings, train: any Dataset) throws -> SamplePipeline.Geometry {
        .scaledCrop(cropHeight: data.cropSize[0], cropWidth: data.cropSize[1], minScale: Float(data.scaleRange[0]), maxScale: Float(data.scaleRange[1]),
                      baseShort: data.baseSize.min() ?? 0, baseLong: data.baseSize.max() ?? 0)
    }

    /// The valid pixels of the global batch (one allreduce), at least 1.
    public func lossNormalizer(_ batch: Batch, globalBatch: Int, comm: Communicator) -> Double {
        var valid = [Double(batch.masks.lazy.filter { $0 != ignoreLabel }.count)]
        comm.allreduceSum(&valid, count: 1, what: "the valid pixel count")
        return max(1, valid[0])
    }

    public func loss(logits: Tensor, batch: Batch, normalizer: Double, dLogits: Tensor?) -> Double {
        upsampledPixelCrossEntropy(dLogits: dLogits, logits: logits, height: batch.images.shape[2], width: batch.images.shape[3],
                                   masks: batch.masks, ignore: ignoreLabel, normalizer: normalizer)
    }

    public func randomBatch(images: Tensor, classes: Int, rng: inout SplitMix64) -> Batch {
        let s = images.shape
        return Batch(images: images, masks: (0..<s[0] * s[2] * s[3]).map { _ in UInt8(rng.next() % UInt64(classes)) })
    }

    public func metrics(classes: Int) -> any TaskMetrics { Metrics(classes: classes) }

    /// [loss sum, confusion matrix (K x K, truth-major)].
    struct Metrics: TaskMetrics {
        let classes: Int
        var sums: [Double]

        init(classes: Int) {
            self.classes = classes
            sums = [Double](repeating: 0, count: 1 + classes * classes)
        }

        mutating func add(logits: Tensor, batch: Batch) {
            let resized = upsampled(logits, like: batch.images)
            sums[0] += pixelCrossEntropy(dLogits: nil, logits: resized, masks: batch.masks, ignore: ignoreLabel, normalizer: 1)
            var confusion = Array(sums[1...])
            accumulateConfusion(&confusion, logits: resized, masks: batch.masks, ignore: ignoreLabel)
            sums.replaceSubrange(1..., with: confusion)
        }

        func result(samples: Int) -> EvaluationResult {
            let k = classes, matrix = Array(sums[1...])
            let valid = matrix.reduce(0, +)
            var correct = 0.0
            let iou = (0..<k).map { c -> Double? in
                let tp = matrix[c * k + c]
                let fn = (0..<k).reduce(0.0) { $0 + matrix[c * k + $1] } - tp
                let fp = (0..<k).reduce(0.0) { $0 + matrix[$1 * k + c] } - tp
                correct += tp
                return tp + fp + fn > 0 ? tp / (tp + fp + fn) : nil
            }
            let defined = iou.compactMap { $0 }
            return EvaluationResult(loss: sums[0] / max(1, valid), accuracy: correct / max(1, valid), samples: samples,
                                    accuracyName: "pixel accuracy", classIoU: iou,
                                    meanIoU: defined.isEmpty ? 0 : defined.reduce(0, +) / Double(defined.count))
        }
    }
}

/// Segmentation logits (N, K, h, w) resized bilinearly to the size of images (N, C, H, W); the
/// logits themselves when they have that size already (full-resolution `Inference`).
func upsampled(_ logits: Tensor, like images: Tensor) -> Tensor {
    let height = images.shape[2], width = images.shape[3]
    return logits.shape[2] == height && logits.shape[3] == width ? logits : resized(logits, height: height, width: width)
}

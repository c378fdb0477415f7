import ABNTensor
import Dispatch

/// Loads batches of a data set through a pipeline: the samples of a batch are decoded and
/// rendered in parallel, and the next batch can be loaded in the background (`prefetch`) while
/// the current step computes. Only the samples asked for are read, so each rank reads the
/// files of its own slice and a data set larger than memory streams.
public final class BatchLoader: @unchecked Sendable {
    public let dataset: any Dataset
    public let pipeline: SamplePipeline
    private let queue = DispatchQueue(label: "abn.batch-prefetch")
    /// The batch being loaded in the background: its request, and its result once done.
    private var pending: (indices: [Int], epoch: Int?, done: DispatchSemaphore)?
    private var pendingResult: Result<Batch, Error>?

    public init(dataset: any Dataset, pipeline: SamplePipeline) {
        self.dataset = dataset
        self.pipeline = pipeline
    }

    /// The decoded samples `indices`, in parallel.
    public func samples(_ indices: [Int]) throws -> [Sample] {
        var results = [Result<Sample, Error>?](repeating: nil, count: indices.count)
        let dataset = dataset
        results.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            DispatchQueue.concurrentPerform(iterations: indices.count) { i in
                out[i] = Result { try dataset.sample(indices[i]) }
            }
        }
        return try results.map { try $0!.get() }
    }

    /// A batch of `samples` (global indices `indices`) at `epoch` (nil: evaluation, whole
    /// images for segmentation, which must then share one size).
    public func assemble(_ samples: [Sample], indices: [Int], epoch: Int?) -> Batch {
        let pipeline = pipeline
        let first = samples.first?.image
        let (H, W) = first.map { pipeline.outputSize(height: $0.height, width: $0.width, training: epoch != nil) }
            ?? pipeline.outputSize(height: 1, width: 1, training: true)
        let C = dataset.channels, n = samples.count
        let images = Tensor(uninitialized: [n, C, H, W])
        let segmentation = samples.contains { if case .mask = $0.target { true } else { false } }  // the targets are masks
        var masks = [UInt8](repeating: ignoreLabel, count: segmentation ? n * H * W : 0)
        masks.withUnsafeMutableBufferPointer { maskBuffer in
            nonisolated(unsafe) let maskBuffer = maskBuffer
            nonisolated(unsafe) let out = images.data
            DispatchQueue.concurrentPerform(iterations: n) { b in
                precondition(epoch != nil || !segmentation || (samples[b].image.height == first!.height && samples[b].image.width == first!.width),
                             "whole-image batches need images of one size")
                pipeline.render(samples[b], index: indices[b], epoch: epoch, height: H, width: W, image: out + b * C * H * W,
                                mask: segmentation ? maskBuffer.baseAddress! + b * H * W : nil)
            }
        }
        let labels = samples.map { sample -> Int in
            if case .label(let label) = sample.target { return label }
            return -1
        }
        return Batch(images: images, labels: segmentation ? [] : labels, masks: masks)
    }

    /// Loads `indices` now.
    public func load(_ indices: [Int], epoch: Int?) throws -> Batch {
        assemble(try samples(indices), indices: indices, epoch: epoch)
    }

    /// Starts loading `indices` in the background; `batch` with the same request takes it.
    public func prefetch(_ indices: [Int], epoch: Int?) {
        let done = DispatchSemaphore(value: 0)
        pending = (indices, epoch, done)
        queue.async {
            self.pendingResult = Result { try self.load(indices, epoch: epoch) }
            done.signal()
        }
    }

    /// The batch of `indices` at `epoch`: the prefetched one when it was asked for, else
    /// loaded now.
    public func batch(_ indices: [Int], epoch: Int?) throws -> Batch {
        if let pending {
            pending.done.wait()
            self.pending = nil
            let result = pendingResult!
            pendingResult = nil
            if pending.indices == indices && pending.epoch == epoch { return try result.get() }
        }
        return try load(indices, epoch: epoch)
    }
}

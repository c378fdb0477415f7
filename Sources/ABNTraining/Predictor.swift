import ABNData
import ABNLayers
import ABNTensor

/// Class masks for images of any size from a segmentation network, without its data set: each
/// image is converted to the network's input channels, normalized as evaluation normalizes it
/// (`data.mean`, `data.std`) and its logits computed at full resolution as `eval.*` says
/// (`Inference`); a pixel's class is its largest logit.
public final class Predictor {
    /// The network, in eval mode.
    public let net: any Network
    public let inference: Inference
    /// Turns an image into normalized input (evaluation's geometry: the whole image).
    public let pipeline: SamplePipeline

    /// The network of `config` for `input` (initial weights: load a checkpoint into `net`), with
    /// `eval.*` windows batched as on `ranks` ranks.
    public init(config: TrainingConfig, input: ModelInput, ranks: Int) throws {
        guard input.task.implementation.predictsMasks else {
            throw TrainingError("model.arch \(config.model.arch) is a \(input.task.rawValue) network; predict draws masks of segmentation networks.")
        }
        guard let mean = config.data.mean.expanded(to: input.channels), let std = config.data.std.expanded(to: input.channels) else {
            throw TrainingError("data.mean and data.std need one value or \(input.channels) (one per input channel of the network); "
                                + "got \(config.data.mean.values.count) and \(config.data.std.values.count).")
        }
        net = try config.makeNetwork(input)
        net.training = false
        inference = config.inference(ranks: ranks)
        let crop = config.data.cropSize
        pipeline = SamplePipeline(geometry: .scaledCrop(cropHeight: crop[0], cropWidth: crop[1], minScale: 1, maxScale: 1),
                                  mean: mean.map(Float.init), std: std.map(Float.init), augment: false, flip: false, seed: 0)
    }

    /// The class of every pixel of `image` (gray or RGB, any size): 1 channel of class ids, its size.
    public func mask(_ image: Image8) throws -> Image8 {
        let logits = try inference.logits(net, image: pipeline.input(image.converted(toChannels: net.inChannels)))
        let k = logits.shape[1], plane = image.width * image.height
        var classes = [UInt8](repeating: 0, count: plane)
        classes.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            Parallel.forRanges(plane, minimumPerThread: 4096) { range in
                for p in range { out[p] = UInt8(argmax(logits.data + p, count: k, stride: plane)) }
            }
        }
        return Image8(width: image.width, height: image.height, channels: 1, pixels: classes)
    }
}

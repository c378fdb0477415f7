import ABNData
import ABNTensor
import Foundation

/// Writes, for the first `count` test images of a segmentation set, DIR/NNNNN.png: the image,
/// its ground truth and the model's prediction side by side, masks colored by `palette`
/// (ignored pixels white). Runs on the calling rank alone, in eval mode.
public func savePredictions(_ replica: Replica, loader: BatchLoader, count: Int, palette: MaskPalette, directory: String) throws {
    guard loader.dataset.count > 0, case .mask = try loader.dataset.sample(0).target else {
        throw TrainingError("--save-predictions draws masks: it needs a segmentation model and data set.")
    }
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let wasTraining = replica.net.training
    replica.net.training = false
    defer { replica.net.training = wasTraining }
    for index in 0..<min(count, loader.dataset.count) {
        let sample = try loader.dataset.sample(index)
        guard case .mask(let truth) = sample.target else { continue }
        let batch = loader.assemble([sample], indices: [index], epoch: nil)
        let logits = upsampled(try replica.net.forward(batch.images), like: batch.images)
        let k = logits.shape[1], plane = truth.width * truth.height
        let predicted = (0..<plane).map { p in UInt8(argmax(logits.data + p, count: k, stride: plane)) }
        let picture = MaskPalette.sideBySide([sample.image.converted(toChannels: 3), palette.colorize(truth),
                                              palette.colorize(Image8(width: truth.width, height: truth.height, channels: 1, pixels: predicted))])
        let path = (directory as NSString).appendingPathComponent(String(format: "%05d.png", index))
        try Data(try PNGCodec.encode(picture)).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

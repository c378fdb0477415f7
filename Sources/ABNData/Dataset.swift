/// The target of one sample: a class, or a mask (1 channel, the image's size) of class ids
/// with 255 for pixels to ignore.
public enum Target: Sendable, Equatable {
    case label(Int)
    case mask(Image8)
}

/// One decoded sample.
public struct Sample: Sendable {
    public var image: Image8
    public var target: Target

    public init(image: Image8, target: Target) {
        self.image = image
        self.target = target
    }
}

/// A data set split: a count of samples, each loaded on demand (decoding included), so a set
/// larger than memory can be streamed. Implementations are safe to call from several threads.
public protocol Dataset: Sendable {
    /// Samples in the split.
    var count: Int { get }
    var task: TaskKind { get }
    /// Channels of every image `sample` returns (1 or 3).
    var channels: Int { get }
    /// Class names by id (segmentation: id 0 is usually the background).
    var classNames: [String] { get }
    /// Sample `index` (0..<count), decoded.
    func sample(_ index: Int) throws -> Sample
    /// (height, width) of sample `index`'s image; sets whose files hold it in a header read
    /// only that.
    func imageSize(_ index: Int) throws -> (height: Int, width: Int)
}

extension Dataset {
    public func imageSize(_ index: Int) throws -> (height: Int, width: Int) {
        let image = try sample(index).image
        return (image.height, image.width)
    }
}

/// The value of a mask pixel that takes no part in the loss or the metric.
public let ignoreLabel: UInt8 = 255

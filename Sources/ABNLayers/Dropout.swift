import ABNTensor

/// Inverted dropout: each element is kept with probability 1 - p and scaled by 1 / (1 - p),
/// else zeroed. Whether an element is kept depends only on its image's key and its index
/// within the image, so a sample's draws are the same however a batch is split over ranks, and
/// the backward pass redraws the forward pass's mask instead of keeping it.
public struct Dropout: Sendable {
    public let probability: Float

    public init(probability: Float) { self.probability = probability }

    /// y (N, ...) = x masked and scaled, the mask of image n drawn from `imageKeys[n]`; y may be x.
    public func apply(_ y: Tensor, _ x: Tensor, imageKeys: [UInt64]) {
        checkShape(y.shape == x.shape && x.shape.first == imageKeys.count,
                   "dropout: shapes \(y.shape) and \(x.shape) with \(imageKeys.count) image keys")
        let perImage = x.count / max(1, imageKeys.count)
        let scale = 1 / (1 - probability), p = probability
        let src = x.data, dst = y.data
        Parallel.forRanges(x.count, minimumPerThread: 4096) { r in
            for i in r {
                var draw = SplitMix64(seed: imageKeys[i / perImage] &+ UInt64(i % perImage) &* 0x9E37_79B9_7F4A_7C15)
                dst[i] = draw.nextUniform() >= p ? src[i] * scale : 0
            }
        }
    }
}

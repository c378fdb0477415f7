import ABNTensor

/// Input normalization and augmentation of training images.
public struct ImagePipeline: Sendable {
    /// x = (pixel / 255 - mean) / std.
    public let mean: Float
    public let std: Float
    /// Random crop after zero padding by `cropPadding` pixels (0: no crop) and horizontal flip
    /// with probability 1/2, both drawn from (seed, epoch, global sample index).
    public let augment: Bool
    public let cropPadding: Int
    public let flip: Bool
    public let seed: UInt64

    public init(mean: Float, std: Float, augment: Bool, cropPadding: Int, flip: Bool, seed: UInt64) {
        self.mean = mean
        self.std = std
        self.augment = augment
        self.cropPadding = cropPadding
        self.flip = flip
        self.seed = seed
    }

    /// images (n, 1, H, W) and labels for the given sample indices of `data`; `epoch` seeds
    /// the augmentation (nil: no augmentation, as for evaluation).
    public func batch(_ data: FashionMNIST, indices: [Int], epoch: Int?) -> (images: Tensor, labels: [Int]) {
        let H = data.height, W = data.width, n = indices.count
        let images = Tensor(uninitialized: [n, 1, H, W])
        let scale = 1 / (255 * std), shift = -mean / std
        let background = shift  // a padded (black) pixel after normalization
        data.pixels.withUnsafeBufferPointer { pixels in
            let src = pixels.baseAddress!, out = images.data
            Parallel.forEach(n) { b in
                let sample = indices[b]
                var dy = 0, dx = 0, mirrored = false
                if augment, let epoch {
                    var rng = SplitMix64(seed: mixSeed(seed, 0x4155_474D, UInt64(epoch), UInt64(sample)))
                    if cropPadding > 0 {
                        dy = Int(rng.next() % UInt64(2 * cropPadding + 1)) - cropPadding
                        dx = Int(rng.next() % UInt64(2 * cropPadding + 1)) - cropPadding
                    }
                    mirrored = flip && rng.next() & 1 == 1
                }
                let image = src + sample * H * W, dst = out + b * H * W
                for y in 0..<H {
                    let sy = y + dy
                    for x in 0..<W {
                        let sx0 = x + dx
                        let sx = mirrored ? W - 1 - sx0 : sx0
                        let inside = sy >= 0 && sy < H && sx0 >= 0 && sx0 < W
                        dst[y * W + x] = inside ? Float(image[sy * W + sx]) * scale + shift : background
                    }
                }
            }
        }
        return (images, indices.map { Int(data.labels[$0]) })
    }
}

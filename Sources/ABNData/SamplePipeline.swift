import ABNTensor

/// How a decoded sample becomes network input: its size (a fixed size, as classification wants;
/// or a random scale and crop in training and the whole image in evaluation, as segmentation
/// wants), a horizontal flip, and per-channel normalization x = (pixel / 255 - mean) / std.
/// Random choices come from (seed, epoch, global sample index) alone, so a sample looks the
/// same whichever rank loads it.
public struct SamplePipeline: Sendable, Equatable {
    public enum Geometry: Sendable, Equatable {
        /// Every image resized (bilinear) to height x width; augmented by a random shift of up
        /// to `padding` pixels (the uncovered border black) and a flip.
        case resized(height: Int, width: Int, padding: Int)
        /// Training: a random scale in minScale...maxScale (images bilinear, masks nearest) of
        /// the image, or with base edges (baseShort, baseLong > 0) of the image first scaled,
        /// keeping its aspect ratio, until its short side fits baseShort and its long side
        /// baseLong, whatever its orientation; then a random crop of cropHeight x cropWidth
        /// (where the scaled image is smaller, it is placed at random in the crop: image padded
        /// with the mean, mask with 255), and a flip. Evaluation: the whole image.
        case scaledCrop(cropHeight: Int, cropWidth: Int, minScale: Float, maxScale: Float, baseShort: Int = 0, baseLong: Int = 0)
    }

    public let geometry: Geometry
    /// Per channel, of pixel / 255.
    public let mean: [Float]
    public let std: [Float]
    /// Random scale and crop (or shift) when training; flip when `flip` too.
    public let augment: Bool
    public let flip: Bool
    /// Training: random brightness (+-32 levels), contrast (x 0.5...1.5) and, for RGB,
    /// saturation (x 0.5...1.5 around the pixel's gray) and hue (+-36 degrees, `turningHue`),
    /// each applied with probability 1/2.
    public let photometric: Bool
    public let seed: UInt64

    public init(geometry: Geometry, mean: [Float], std: [Float], augment: Bool, flip: Bool, photometric: Bool = false, seed: UInt64) {
        precondition(mean.count == std.count && !mean.isEmpty, "one mean and one std per channel")
        self.geometry = geometry
        self.mean = mean
        self.std = std
        self.augment = augment
        self.flip = flip
        self.photometric = photometric
        self.seed = seed
    }

    /// Output (height, width) for an image of `height` x `width`; `training` selects the
    /// segmentation crop (evaluation keeps the whole image).
    public func outputSize(height: Int, width: Int, training: Bool) -> (height: Int, width: Int) {
        switch geometry {
        case .resized(let h, let w, _): return (h, w)
        case .scaledCrop(let h, let w, _, _, _, _): return training ? (h, w) : (height, width)
        }
    }

    /// Where the output window lies on the image scaled to scaledHeight x scaledWidth: output
    /// pixel (y, x) shows scaled pixel (y + offsetY, x + offsetX), mirrored when `mirrored`.
    struct Placement {
        var scaledHeight, scaledWidth, offsetY, offsetX: Int
        var mirrored: Bool
    }

    /// The placement of sample `index` at `epoch` (nil: evaluation, no augmentation).
    func placement(height: Int, width: Int, index: Int, epoch: Int?) -> Placement {
        var rng = SplitMix64(seed: mixSeed(seed, 0x4155_474D, UInt64(epoch ?? 0), UInt64(index)))
        let random = augment && epoch != nil
        switch geometry {
        case .resized(let h, let w, let padding):
            var p = Placement(scaledHeight: h, scaledWidth: w, offsetY: 0, offsetX: 0, mirrored: false)
            if random {
                if padding > 0 {
                    p.offsetY = Int(rng.next() % UInt64(2 * padding + 1)) - padding
                    p.offsetX = Int(rng.next() % UInt64(2 * padding + 1)) - padding
                }
                p.mirrored = flip && rng.next() & 1 == 1
            }
            return p
        case .scaledCrop(let cropHeight, let cropWidth, let minScale, let maxScale, let baseShort, let baseLong):
            guard epoch != nil else {
                return Placement(scaledHeight: height, scaledWidth: width, offsetY: 0, offsetX: 0, mirrored: false)
            }
            let fit = baseShort > 0 && baseLong > 0
                ? min(Float(baseShort) / Float(min(height, width)), Float(baseLong) / Float(max(height, width))) : 1
            let scale = fit * (random ? minScale + (maxScale - minScale) * rng.nextUniform() : 1)
            let sh = max(1, Int((Float(height) * scale).rounded())), sw = max(1, Int((Float(width) * scale).rounded()))
            func offset(_ scaled: Int, _ crop: Int) -> Int {
                let span = abs(scaled - crop)
                let o = random ? Int(rng.next() % UInt64(span + 1)) : span / 2
                return scaled >= crop ? o : -o
            }
            let oy = offset(sh, cropHeight), ox = offset(sw, cropWidth)
            return Placement(scaledHeight: sh, scaledWidth: sw, offsetY: oy, offsetX: ox, mirrored: random && flip && rng.next() & 1 == 1)
        }
    }

    /// Writes sample `index` (its global index) at `epoch` (nil: evaluation) as (C, height,
    /// width) normalized values to `image` and, for a mask, (height, width) class ids to `mask`.
    public func render(_ sample: Sample, index: Int, epoch: Int?, height: Int, width: Int,
                       image out: UnsafeMutablePointer<Float>, mask maskOut: UnsafeMutablePointer<UInt8>?) {
        let source = sample.image
        let C = source.channels, h = source.height, w = source.width
        precondition(C == mean.count, "an image of \(C) channels for a pipeline of \(mean.count)")
        let p = placement(height: h, width: w, index: index, epoch: epoch)
        let padsWithMean = if case .scaledCrop = geometry { true } else { false }
        let scale = (0..<C).map { 1 / (255 * std[$0]) }, shift = (0..<C).map { -mean[$0] / std[$0] }
        let jitter = photometric && augment && epoch != nil ? Jitter(seed: mixSeed(seed, 0x5048_4F54, UInt64(epoch!), UInt64(index))) : nil
        // the uncovered border: black for a resized image, the mean (0 after normalization) for a scaled crop
        let fill = (0..<C).map { padsWithMean ? Float(0) : shift[$0] }
        let rows = sourceCoordinates(count: height, offset: p.offsetY, scaled: p.scaledHeight, original: h, mirrored: false)
        let columns = sourceCoordinates(count: width, offset: p.offsetX, scaled: p.scaledWidth, original: w, mirrored: p.mirrored)
        source.pixels.withUnsafeBufferPointer { pixels in
            let src = pixels.baseAddress!
            for y in 0..<height {
                let r = rows[y]
                for x in 0..<width {
                    let col = columns[x]
                    for c in 0..<C {
                        let o = out + (c * height + y) * width + x
                        guard let r, let col else { o.pointee = fill[c]; continue }
                        let top = Float(src[(r.low * w + col.low) * C + c]) * (1 - col.weight)
                            + Float(src[(r.low * w + col.high) * C + c]) * col.weight
                        let bottom = Float(src[(r.high * w + col.low) * C + c]) * (1 - col.weight)
                            + Float(src[(r.high * w + col.high) * C + c]) * col.weight
                        o.pointee = (top * (1 - r.weight) + bottom * r.weight) * scale[c] + shift[c]
                    }
                    if let jitter, r != nil, col != nil { jitter.apply(out + y * width + x, plane: height * width, channels: C, scale: scale, shift: shift) }
                }
            }
        }
        guard let maskOut, case .mask(let mask) = sample.target else { return }
        let nearestRows = nearestCoordinates(count: height, offset: p.offsetY, scaled: p.scaledHeight, original: h, mirrored: false)
        let nearestColumns = nearestCoordinates(count: width, offset: p.offsetX, scaled: p.scaledWidth, original: w, mirrored: p.mirrored)
        for y in 0..<height {
            for x in 0..<width {
                if let r = nearestRows[y], let col = nearestColumns[x] {
                    maskOut[y * width + x] = mask.pixels[r * w + col]
                } else {
                    maskOut[y * width + x] = ignoreLabel
                }
            }
        }
    }

    /// Random photometric changes of one sample, on 0...255 pixel values.
    struct Jitter {
        var brightness: Float = 0
        var contrast: Float = 1
        var saturation: Float = 1
        /// Degrees the hue turns by.
        var hue: Float = 0

        init(seed: UInt64) {
            var rng = SplitMix64(seed: seed)
            if rng.next() & 1 == 1 { brightness = 64 * rng.nextUniform() - 32 }
            if rng.next() & 1 == 1 { contrast = 0.5 + rng.nextUniform() }
            if rng.next() & 1 == 1 { saturation = 0.5 + rng.nextUniform() }
            if rng.next() & 1 == 1 { hue = 72 * rng.nextUniform() - 36 }
        }

        /// Changes the pixel whose normalized channel values are at `p`, `p + plane`, ...: back to
        /// 0...255, brightness, contrast, then for RGB saturation and hue, clamped, normalized again.
        func apply(_ p: UnsafeMutablePointer<Float>, plane: Int, channels: Int, scale: [Float], shift: [Float]) {
            var v = SIMD4<Float>(repeating: 0)  // up to 3 channels, without allocating
            for c in 0..<channels { v[c] = min(255, max(0, ((p[c * plane] - shift[c]) / scale[c] + brightness) * contrast)) }
            if channels == 3 {
                let gray = 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2]
                for c in 0..<3 { v[c] = min(255, max(0, gray + (v[c] - gray) * saturation)) }
                if hue != 0 { v = turningHue(v, by: hue) }
            }
            for c in 0..<channels { p[c * plane] = v[c] * scale[c] + shift[c] }
        }
    }

    /// `image` (of the pipeline's channels) as evaluation input (1, C, H', W'): what `render`
    /// writes for it at no epoch (segmentation: the whole image, normalized). No mask is asked
    /// for, so the sample's target is not read.
    public func input(_ image: Image8) -> Tensor {
        let size = outputSize(height: image.height, width: image.width, training: false)
        let tensor = Tensor(uninitialized: [1, image.channels, size.height, size.width])
        render(Sample(image: image, target: .label(0)), index: 0, epoch: nil, height: size.height, width: size.width, image: tensor.data, mask: nil)
        return tensor
    }

    /// A bilinear source position: rows (or columns) low and high with the weight of high.
    struct Tap { var low: Int; var high: Int; var weight: Float }

    /// For each output coordinate, the bilinear taps in the original image (PyTorch's
    /// align_corners=False: source = (scaled + 0.5) * original / scaled - 0.5, clamped at 0),
    /// or nil where the output lies outside the scaled image.
    func sourceCoordinates(count: Int, offset: Int, scaled: Int, original: Int, mirrored: Bool) -> [Tap?] {
        let ratio = Float(original) / Float(scaled)
        return (0..<count).map { i in
            let s = i + offset
            guard s >= 0 && s < scaled else { return nil }
            let t = mirrored ? scaled - 1 - s : s
            if scaled == original { return Tap(low: t, high: t, weight: 0) }
            let position = max(0, (Float(t) + 0.5) * ratio - 0.5)
            let low = min(Int(position), original - 1)
            return Tap(low: low, high: min(low + 1, original - 1), weight: position - Float(low))
        }
    }

    /// For each output coordinate, the nearest source pixel (PyTorch's "nearest": floor(scaled
    /// * original / scaled)), or nil outside the scaled image.
    func nearestCoordinates(count: Int, offset: Int, scaled: Int, original: Int, mirrored: Bool) -> [Int?] {
        (0..<count).map { i in
            let s = i + offset
            guard s >= 0 && s < scaled else { return nil }
            let t = mirrored ? scaled - 1 - s : s
            return min(original - 1, t * original / scaled)
        }
    }
}

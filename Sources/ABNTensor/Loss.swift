import Foundation

/// Softmax cross-entropy of logits (N, classes) against integer labels.
///
/// Returns sum over the N samples of -log softmax(logits)[label], divided by `normalizer`,
/// and writes dLogits (N, classes) = (softmax - onehot) / normalizer. The normalizer is
/// passed in so a rank holding part of a batch divides by the global batch size.
@discardableResult
public func softmaxCrossEntropy(dLogits: Tensor?, logits: Tensor, labels: [Int], normalizer: Double) -> Double {
    checkShape(logits.shape.count == 2 && logits.shape[0] == labels.count,
               "cross-entropy: logits shape \(logits.shape) does not match \(labels.count) labels")
    if let dLogits { checkShape(dLogits.shape == logits.shape, "cross-entropy: dLogits shape \(dLogits.shape) differs from logits shape \(logits.shape)") }
    precondition(normalizer > 0, "cross-entropy: the normalizer must be positive, got \(normalizer)")
    let n = logits.shape[0], k = logits.shape[1]
    var total = 0.0
    for i in 0..<n {
        let row = logits.data + i * k
        let label = labels[i]
        precondition(label >= 0 && label < k, "cross-entropy: label \(label) of sample \(i) is outside 0..<\(k)")
        var m = -Float.infinity
        for j in 0..<k { m = max(m, row[j]) }
        var sum = 0.0
        for j in 0..<k { sum += Double(expf(row[j] - m)) }
        let logSum = Double(m) + log(sum)
        total += logSum - Double(row[label])
        if let dLogits {
            let g = dLogits.data + i * k
            for j in 0..<k {
                let p = exp(Double(row[j]) - logSum)
                g[j] = Float((p - (j == label ? 1 : 0)) / normalizer)
            }
        }
    }
    return total / normalizer
}

/// Per-pixel softmax cross-entropy of logits (N, K, H, W) against `masks` ((N, H, W) class
/// ids; pixels equal to `ignore` take no part).
///
/// Returns the sum over the other pixels of -log softmax(logits)[label], divided by
/// `normalizer`, and writes dLogits (N, K, H, W) = (softmax - onehot) / normalizer, zero at
/// ignored pixels. The normalizer is passed in so that a rank divides by the valid pixels of
/// the global batch. Partial sums are added in a fixed order: the result does not depend on
/// the thread count.
@discardableResult
public func pixelCrossEntropy(dLogits: Tensor?, logits: Tensor, masks: [UInt8], ignore: UInt8, normalizer: Double) -> Double {
    let s = logits.shape
    checkShape(s.count == 4 && masks.count == s[0] * s[2] * s[3],
               "pixel cross-entropy: logits shape \(s) does not match \(masks.count) mask pixels (want (N, K, H, W) and N*H*W)")
    if let dLogits { checkShape(dLogits.shape == s, "pixel cross-entropy: dLogits shape \(dLogits.shape) differs from logits shape \(s)") }
    precondition(normalizer > 0, "pixel cross-entropy: the normalizer must be positive, got \(normalizer)")
    let n = s[0], k = s[1], hw = s[2] * s[3]
    let chunk = 1024, chunksPerImage = (hw + chunk - 1) / chunk
    var partials = [Double](repeating: 0, count: n * chunksPerImage)
    let x = logits.data, g = dLogits?.data
    masks.withUnsafeBufferPointer { labels in
        partials.withUnsafeMutableBufferPointer { partial in
            nonisolated(unsafe) let partial = partial
            Parallel.forEach(n * chunksPerImage) { item in
                let image = item / chunksPerImage, start = (item % chunksPerImage) * chunk
                let base = image * k * hw
                var total = 0.0
                for p in start..<min(hw, start + chunk) {
                    let label = labels[image * hw + p]
                    if label == ignore {
                        if let g { for j in 0..<k { g[base + j * hw + p] = 0 } }
                        continue
                    }
                    precondition(Int(label) < k, "pixel cross-entropy: label \(label) at pixel \(p) of image \(image) is outside 0..<\(k)")
                    var m = -Float.infinity
                    for j in 0..<k { m = max(m, x[base + j * hw + p]) }
                    var sum = 0.0
                    for j in 0..<k { sum += Double(expf(x[base + j * hw + p] - m)) }
                    let logSum = Double(m) + log(sum)
                    total += logSum - Double(x[base + Int(label) * hw + p])
                    if let g {
                        for j in 0..<k {
                            let q = exp(Double(x[base + j * hw + p]) - logSum)
                            g[base + j * hw + p] = Float((q - (j == Int(label) ? 1 : 0)) / normalizer)
                        }
                    }
                }
                partial[item] = total
            }
        }
    }
    return partials.reduce(0, +) / normalizer
}

/// Adds to `counts` (K x K, row = true class, column = predicted class) every pixel of
/// `masks` ((N, H, W)) other than `ignore`, predicted as the argmax over K of logits (N, K, H, W).
public func accumulateConfusion(_ counts: inout [Double], logits: Tensor, masks: [UInt8], ignore: UInt8) {
    let s = logits.shape
    checkShape(s.count == 4 && masks.count == s[0] * s[2] * s[3], "confusion: logits shape \(s) does not match \(masks.count) mask pixels")
    let k = s[1], hw = s[2] * s[3]
    precondition(counts.count == k * k, "confusion: \(counts.count) counts for \(k) classes")
    let x = logits.data
    for image in 0..<s[0] {
        let base = image * k * hw
        for p in 0..<hw {
            let label = masks[image * hw + p]
            if label == ignore { continue }
            counts[Int(label) * k + argmax(x + base + p, count: k, stride: hw)] += 1
        }
    }
}

/// `pixelCrossEntropy` of logits (N, K, h, w) bilinearly resized to the masks' height x width
/// (PyTorch's align_corners=False), without materializing the resized logits or their
/// gradient: each output pixel interpolates its K logits from four neighbours, and its
/// gradient is added back to them. Writes dLogits (N, K, h, w); returns the loss sum over the
/// pixels not equal to `ignore`, divided by `normalizer`. Per-image partial sums are added in
/// a fixed order: the result does not depend on the thread count.
@discardableResult
public func upsampledPixelCrossEntropy(dLogits: Tensor?, logits: Tensor, height H: Int, width W: Int, masks: [UInt8], ignore: UInt8,
                                       normalizer: Double) -> Double {
    let s = logits.shape
    checkShape(s.count == 4 && masks.count == s[0] * H * W,
               "upsampled pixel cross-entropy: logits shape \(s) does not match \(masks.count) mask pixels of \(H)x\(W)")
    if let dLogits { checkShape(dLogits.shape == s, "upsampled pixel cross-entropy: dLogits shape \(dLogits.shape) differs from logits shape \(s)") }
    precondition(normalizer > 0, "upsampled pixel cross-entropy: the normalizer must be positive, got \(normalizer)")
    let n = s[0], k = s[1], h = s[2], w = s[3], plane = h * w
    let rows = bilinearTaps(outSize: H, inSize: h), columns = bilinearTaps(outSize: W, inSize: w)
    var partials = [Double](repeating: 0, count: n)
    let x = logits.data, g = dLogits?.data
    masks.withUnsafeBufferPointer { labels in
        partials.withUnsafeMutableBufferPointer { partial in
            nonisolated(unsafe) let partial = partial
            Parallel.forEach(n) { image in
                let base = image * k * plane
                if let g { (g + base).update(repeating: 0, count: k * plane) }
                var values = [Float](repeating: 0, count: k)
                var total = 0.0
                for oy in 0..<H {
                    let r = rows[oy]
                    for ox in 0..<W {
                        let label = labels[(image * H + oy) * W + ox]
                        if label == ignore { continue }
                        precondition(Int(label) < k, "upsampled pixel cross-entropy: label \(label) is outside 0..<\(k)")
                        let c = columns[ox]
                        var m = -Float.infinity
                        for j in 0..<k {
                            let p = x + base + j * plane
                            let upper = p[r.low * w + c.low] * (1 - c.weight) + p[r.low * w + c.high] * c.weight
                            let lower = p[r.high * w + c.low] * (1 - c.weight) + p[r.high * w + c.high] * c.weight
                            values[j] = upper * (1 - r.weight) + lower * r.weight
                            m = max(m, values[j])
                        }
                        var sum = 0.0
                        for j in 0..<k { sum += Double(expf(values[j] - m)) }
                        let logSum = Double(m) + log(sum)
                        total += logSum - Double(values[Int(label)])
                        guard let g else { continue }
                        for j in 0..<k {
                            let d = Float((exp(Double(values[j]) - logSum) - (j == Int(label) ? 1 : 0)) / normalizer)
                            let q = g + base + j * plane
                            let upper = d * (1 - r.weight), lower = d * r.weight
                            q[r.low * w + c.low] += upper * (1 - c.weight); q[r.low * w + c.high] += upper * c.weight
                            q[r.high * w + c.low] += lower * (1 - c.weight); q[r.high * w + c.high] += lower * c.weight
                        }
                    }
                }
                partial[image] = total
            }
        }
    }
    return partials.reduce(0, +) / normalizer
}

import ABNLayers
import ABNTensor

/// How a segmentation network's logits for a whole image are computed at the image's resolution
/// (`eval.*`): at each scale the image is resized bilinearly and evaluated whole (one forward
/// pass) or in sliding windows, and, with `flip`, so is its mirror image (whose logits are
/// mirrored back); each pass's logits are resized bilinearly to the image and the passes are
/// averaged. Memory is bounded by one forward pass of at most `pixels` input pixels (whole mode:
/// the scaled image) plus a few full-size (K, H, W) tensors.
public struct Inference: Sendable, Equatable, CustomStringConvertible {
    public enum Mode: String, Sendable, CaseIterable {
        /// One forward pass on the whole (scaled) image.
        case whole
        /// Windows of `crop` pixels every `stride` pixels, their logits averaged where they overlap.
        case slide
    }

    public var mode: Mode
    /// slide: the window [height, width] in pixels of the scaled image.
    public var crop: [Int]
    /// slide: the step [height, width] in pixels between windows.
    public var stride: [Int]
    /// The scales the image is evaluated at.
    public var scales: [Double]
    /// Whether the mirrored image is evaluated too.
    public var flip: Bool
    /// slide: input pixels per forward pass; windows of one image are batched up to it (at least one window).
    public var pixels: Int

    public init(mode: Mode = .whole, crop: [Int] = [], stride: [Int] = [], scales: [Double] = [1], flip: Bool = false, pixels: Int = .max) {
        precondition(mode == .whole || (crop.count == 2 && stride.count == 2 && (crop + stride).allSatisfy { $0 >= 1 }),
                     "sliding windows need a crop and a stride of [height, width]")
        precondition(!scales.isEmpty && scales.allSatisfy { $0 > 0 }, "at least one positive scale")
        self.mode = mode
        self.crop = crop
        self.stride = stride
        self.scales = scales
        self.flip = flip
        self.pixels = pixels
    }

    /// One forward pass on the image at its own size, its logits resized to it: what the batched
    /// evaluation of whole images computes.
    public var isPlainWhole: Bool { mode == .whole && scales == [1] && !flip }

    /// "slide 512x512 every 341x341, scales 0.75 1 1.25, flip" ("whole" for the plain case).
    public var description: String {
        var text = mode == .whole ? "whole" : "slide \(crop[0])x\(crop[1]) every \(stride[0])x\(stride[1])"
        if scales != [1] { text += ", scales " + scales.map { String(format: "%g", $0) }.joined(separator: " ") }
        if flip { text += ", flip" }
        return text
    }

    /// The logits (1, K, H, W) of `net` (in eval mode) for `image` (1, C, H, W), normalized: the
    /// mean over scales and mirrorings of each pass's logits, resized to H x W.
    public func logits(_ net: any Network, image: Tensor) throws -> Tensor {
        precondition(image.shape.count == 4 && image.shape[0] == 1, "inference takes one image (1, C, H, W), got \(image.shape)")
        let H = image.shape[2], W = image.shape[3]
        var total: Tensor?
        var passes = 0
        for scale in scales {
            let height = max(1, Int((Double(H) * scale).rounded())), width = max(1, Int((Double(W) * scale).rounded()))
            let scaled = height == H && width == W ? image : resized(image, height: height, width: width)
            for mirrored in flip ? [false, true] : [false] {
                let input = mirrored ? mirroredHorizontally(scaled) : scaled
                var logits = mode == .whole ? try net.forward(input) : try slide(net, input)
                if mirrored { logits = mirroredHorizontally(logits) }
                if logits.shape[2] != H || logits.shape[3] != W { logits = resized(logits, height: H, width: W) }
                if let total { add(logits, into: total) } else { total = logits }
                passes += 1
            }
        }
        let mean = total!
        if passes > 1 {
            let divisor = Float(passes)
            Parallel.forRanges(mean.count, minimumPerThread: 1 << 16) { range in
                for i in range { mean.data[i] /= divisor }
            }
        }
        return mean
    }

    /// The logits (1, K, h, w) of `x` (1, C, h, w) from windows of `crop` (clipped to the image)
    /// at the `windowStarts` of each axis: each window's logits are resized bilinearly to the
    /// window, added into a full-size sum, and every pixel's sum is divided by the windows that
    /// cover it.
    func slide(_ net: any Network, _ x: Tensor) throws -> Tensor {
        let C = x.shape[1], h = x.shape[2], w = x.shape[3], K = net.classes
        let wh = min(crop[0], h), ww = min(crop[1], w)
        let rows = Self.windowStarts(size: h, window: wh, stride: stride[0])
        let columns = Self.windowStarts(size: w, window: ww, stride: stride[1])
        let windows = rows.flatMap { top in columns.map { (top: top, left: $0) } }
        let sum = Tensor(zeros: [1, K, h, w])
        var covering = [Float](repeating: 0, count: h * w)
        let perPass = max(1, min(windows.count, pixels / (wh * ww)))
        var first = 0
        while first < windows.count {
            let group = Array(windows[first..<min(first + perPass, windows.count)])
            first += group.count
            let input = Tensor(uninitialized: [group.count, C, wh, ww])
            Parallel.forEach(group.count * C) { plane in
                let window = group[plane / C], c = plane % C
                for row in 0..<wh {
                    (input.data + (plane * wh + row) * ww).update(from: x.data + (c * h + window.top + row) * w + window.left, count: ww)
                }
            }
            let output = try net.forward(input)
            let logits = output.shape[2] == wh && output.shape[3] == ww ? output : resized(output, height: wh, width: ww)
            Parallel.forEach(K) { k in
                for (b, window) in group.enumerated() {
                    for row in 0..<wh {
                        let source = logits.data + ((b * K + k) * wh + row) * ww
                        let target = sum.data + (k * h + window.top + row) * w + window.left
                        for column in 0..<ww { target[column] += source[column] }
                    }
                }
            }
            for window in group {
                for row in 0..<wh {
                    for column in 0..<ww { covering[(window.top + row) * w + window.left + column] += 1 }
                }
            }
        }
        covering.withUnsafeBufferPointer { counts in
            nonisolated(unsafe) let counts = counts
            Parallel.forEach(K) { k in
                let plane = sum.data + k * h * w
                for p in 0..<h * w { plane[p] /= counts[p] }
            }
        }
        return sum
    }

    /// The first pixels of the windows of `window` pixels along an axis of `size` pixels: every
    /// `stride` pixels from 0, the last one ending at the axis's end; [0] when the window spans
    /// the axis.
    public static func windowStarts(size: Int, window: Int, stride: Int) -> [Int] {
        guard size > window else { return [0] }
        return Array(Swift.stride(from: 0, to: size - window, by: stride)) + [size - window]
    }
}

extension TrainingConfig {
    /// The inference `eval.*` describes, with windows batched up to half of
    /// `evaluationPixels(ranks:)`: a forward pass keeps about half of what a training step holds
    /// (no gradients), and the other half leaves room for the full-size sums of a large image.
    public func inference(ranks: Int) -> Inference {
        Inference(mode: eval.mode, crop: evalCrop, stride: evalStride, scales: eval.scales, flip: eval.flip,
                  pixels: max(1, evaluationPixels(ranks: ranks) / 2))
    }
}

/// `t` (N, C, H, W) resized bilinearly to height x width, as a new tensor.
func resized(_ t: Tensor, height: Int, width: Int) -> Tensor {
    let output = Tensor(uninitialized: [t.shape[0], t.shape[1], height, width])
    bilinearUpsampleForward(output: output, input: t)
    return output
}

/// `t` (N, C, H, W) mirrored left to right, as a new tensor.
func mirroredHorizontally(_ t: Tensor) -> Tensor {
    let output = Tensor(uninitialized: t.shape)
    let W = t.shape[3]
    Parallel.forEach(t.count / W, minimumPerThread: 64) { row in
        let source = t.data + row * W, target = output.data + row * W
        for x in 0..<W { target[x] = source[W - 1 - x] }
    }
    return output
}

/// total += t, element-wise (same shapes).
private func add(_ t: Tensor, into total: Tensor) {
    checkShape(t.shape == total.shape, "adding logits of shape \(t.shape) into \(total.shape)")
    Parallel.forRanges(t.count, minimumPerThread: 1 << 16) { range in
        for i in range { total.data[i] += t.data[i] }
    }
}

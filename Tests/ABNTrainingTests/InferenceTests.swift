import ABNLayers
import ABNTensor
import ABNTestSupport
import ABNTraining
import Foundation
import Testing

/// Full-resolution inference (`Inference`) on a tiny DeepLabV3 against direct computations in
/// the test: the network's forward pass on crops and resized images, bilinear resizing, and
/// averages taken in Double. Each window or pass is forwarded alone, as the test forwards it, so
/// both see the same logits; they differ only in how the average is rounded.
@Suite("Full-resolution inference: windows, scales, flip")
struct InferenceTests {
    /// torchvision's DeepLabV3 over a ResNet-18 of base width 4 (output stride 8), 3 input
    /// channels, 5 classes, initial weights, in eval mode.
    func network() throws -> any Network {
        let config = try TrainingConfig.parse(yaml: "", overrides: ["model.arch=deeplabv3", "model.backbone=resnet18", "model.base_width=4",
                                                                    "model.head_width=8", "model.output_stride=8", "model.init_seed=5"])
        let net = try config.makeNetwork(ModelInput(channels: 3, classes: 5, task: .segmentation))
        net.training = false
        return net
    }

    /// `x` (1, C, H, W) resized bilinearly to height x width.
    func resize(_ x: Tensor, _ height: Int, _ width: Int) -> Tensor {
        let output = Tensor(uninitialized: [x.shape[0], x.shape[1], height, width])
        bilinearUpsampleForward(output: output, input: x)
        return output
    }

    /// `x` (N, C, H, W) mirrored left to right.
    func mirror(_ x: Tensor) -> Tensor {
        let s = x.shape, values = x.array
        var out = values
        for row in 0..<(s[0] * s[1] * s[2]) {
            for column in 0..<s[3] { out[row * s[3] + column] = values[row * s[3] + s[3] - 1 - column] }
        }
        return Tensor(out, shape: s)
    }

    /// The rows top..<top+height and columns left..<left+width of `x` (1, C, H, W).
    func crop(_ x: Tensor, top: Int, left: Int, height: Int, width: Int) -> Tensor {
        let C = x.shape[1], H = x.shape[2], W = x.shape[3], values = x.array
        var out: [Float] = []
        for c in 0..<C {
            for y in top..<top + height {
                let start: Int = (c * H + y) * W + left
                out += values[start..<start + width]
            }
        }
        return Tensor(out, shape: [1, C, height, width])
    }

    /// Checks that `got` is, element by element, the mean of the `passes` that cover it, within
    /// the rounding of a Float average: adding n values one at a time errs by at most
    /// gamma(n - 1) sum |v| (gamma(k) = k u / (1 - k u), u = 2^-24), and dividing the rounded sum
    /// by n adds u |rounded sum| (Higham, Accuracy and Stability of Numerical Algorithms, 4.2).
    /// `passes[i]` holds, per element, its value in pass i or nil where pass i does not cover it.
    func expectMean(_ got: Tensor, of passes: [[Float?]], sourceLocation: SourceLocation = #_sourceLocation) {
        let u = 0x1p-24
        var failures: [String] = []
        for i in 0..<got.count {
            let values = passes.compactMap { $0[i] }.map(Double.init)
            let n = Double(values.count), sum = values.reduce(0, +), magnitude = values.reduce(0) { $0 + abs($1) }
            let gamma = (n - 1) * u / (1 - (n - 1) * u)
            let bound = (gamma * magnitude + u * (abs(sum) + gamma * magnitude)) / n
            let error = abs(Double(got[flat: i]) - sum / n)
            if values.isEmpty || !(error <= bound) {
                failures.append("element \(i): \(got[flat: i]) is \(error) from the mean \(sum / n) of \(values); bound \(bound)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) element(s) off, first: \(failures.first ?? "")", sourceLocation: sourceLocation)
    }

    @Test("windows start every stride and the last ends at the image's end; a window spanning the axis is one")
    func windowStarts() {
        #expect(Inference.windowStarts(size: 40, window: 24, stride: 12) == [0, 12, 16])
        #expect(Inference.windowStarts(size: 56, window: 32, stride: 16) == [0, 16, 24])
        #expect(Inference.windowStarts(size: 150, window: 50, stride: 50) == [0, 50, 100])
        #expect(Inference.windowStarts(size: 1024, window: 512, stride: 341) == [0, 341, 512])
        #expect(Inference.windowStarts(size: 64, window: 64, stride: 43) == [0])
    }

    @Test("one window covering the image gives the whole image's logits bit for bit")
    func windowCoveringTheImage() throws {
        try withProcessSettings {
            let net = try network(), x = randomTensor([1, 3, 40, 56], seed: 11)
            // the window is the image: its forward pass, resized to it, added to zeros and divided by 1
            let whole = resize(try net.forward(x), 40, 56).array
            for crop in [[40, 56], [64, 64]] {
                let slide = Inference(mode: .slide, crop: crop, stride: [16, 16])
                #expect(try slide.logits(net, image: x).array == whole, "window \(crop)")
            }
            #expect(try Inference().logits(net, image: x).array == whole, "plain whole inference")
        }
    }

    @Test("overlapping windows: each pixel's logits are the mean of the windows' logits resized to the window")
    func overlappingWindows() throws {
        try withProcessSettings {
            let net = try network(), x = randomTensor([1, 3, 40, 56], seed: 12)
            let K = net.classes, H = 40, W = 56, height = 24, width = 32
            // one window per forward pass, as the test computes them
            let slide = Inference(mode: .slide, crop: [height, width], stride: [12, 16], pixels: height * width)
            let got = try slide.logits(net, image: x)
            #expect(got.shape == [1, K, H, W])
            var passes: [[Float?]] = []
            for top in [0, 12, 16] {
                for left in [0, 16, 24] {
                    let logits = resize(try net.forward(crop(x, top: top, left: left, height: height, width: width)), height, width).array
                    var pass = [Float?](repeating: nil, count: K * H * W)
                    for k in 0..<K {
                        for y in 0..<height {
                            for column in 0..<width { pass[(k * H + top + y) * W + left + column] = logits[(k * height + y) * width + column] }
                        }
                    }
                    passes.append(pass)
                }
            }
            // pixel (20, 28) lies in all nine windows
            #expect(passes.filter { $0[20 * W + 28] != nil }.count == 9)
            expectMean(got, of: passes)
        }
    }

    @Test("scales [1] without flip is one forward pass; scales [1, 1] average it with itself, bit for bit")
    func unitScales() throws {
        try withProcessSettings {
            let net = try network(), x = randomTensor([1, 3, 33, 47], seed: 13)
            let whole = resize(try net.forward(x), 33, 47).array
            #expect(Inference(scales: [1]).isPlainWhole && !Inference(mode: .slide, crop: [8, 8], stride: [8, 8]).isPlainWhole)
            #expect(try Inference(scales: [1]).logits(net, image: x).array == whole)
            // (v + v) / 2 = v exactly
            #expect(try Inference(scales: [1, 1]).logits(net, image: x).array == whole)
        }
    }

    @Test("scales: the image resized bilinearly, its logits resized back to it, the scales averaged")
    func scales() throws {
        try withProcessSettings {
            let net = try network(), x = randomTensor([1, 3, 40, 56], seed: 14)
            let got = try Inference(scales: [0.5, 1.25]).logits(net, image: x)
            let half = resize(try net.forward(resize(x, 20, 28)), 40, 56).array
            let larger = resize(try net.forward(resize(x, 50, 70)), 40, 56).array
            expectMean(got, of: [half, larger])
        }
    }

    @Test("flip: the mean of the image's logits and its mirror image's, mirrored back")
    func flip() throws {
        try withProcessSettings {
            let net = try network(), x = randomTensor([1, 3, 40, 56], seed: 15)
            let got = try Inference(flip: true).logits(net, image: x)
            let plain = resize(try net.forward(x), 40, 56).array
            let mirrored = resize(mirror(try net.forward(mirror(x))), 40, 56).array
            expectMean(got, of: [plain, mirrored])
            #expect(got.array != plain, "the mirror image changed nothing: the test would not see a missing flip")
        }
    }

    @Test("flip on a horizontally symmetric input equals no flip, with a network whose logits mirror with its input")
    func flipOfSymmetricInput() throws {
        let net = MirrorEquivariantNetwork(channels: 3, classes: 4)
        let x = randomTensor([1, 3, 12, 17], seed: 16)
        let values = x.array
        var symmetric = values
        for row in 0..<(3 * 12) {
            for column in 0..<17 { symmetric[row * 17 + column] = values[row * 17 + min(column, 16 - column)] }
        }
        let image = Tensor(symmetric, shape: x.shape)
        // the mirror image is the image; its logits, mirrored back, are the logits: (v + v) / 2 = v
        let plain = try Inference().logits(net, image: image).array
        #expect(try Inference(flip: true).logits(net, image: image).array == plain)
    }
}

/// A network whose logits mirror with its input, bit for bit: at each pixel, per class, a
/// weighted sum of the pixel's channels and of the sums of its left and right neighbours'
/// (a + b = b + a in floating point), at the input's resolution.
final class MirrorEquivariantNetwork: Network {
    let parameters = ParameterStore([])
    let normLayers: [NormAct] = []
    let perImageNormLayers: [NormAct] = []
    var gradientsReady: ((Parameter) -> Void)?
    let inChannels: Int
    let classes: Int
    /// (classes, channels) weights of the pixel and of its neighbours' sum.
    private let center: [Float], neighbours: [Float]

    init(channels: Int, classes: Int) {
        inChannels = channels
        self.classes = classes
        center = randomTensor([classes * channels], seed: 21).array
        neighbours = randomTensor([classes * channels], seed: 22).array
    }

    func forward(_ images: Tensor) throws -> Tensor {
        let s = images.shape, C = s[1], H = s[2], W = s[3]
        let output = Tensor(zeros: [s[0], classes, H, W])
        for n in 0..<s[0] {
            for k in 0..<classes {
                for y in 0..<H {
                    for x in 0..<W {
                        var value: Float = 0
                        for c in 0..<C {
                            let row = images.data + ((n * C + c) * H + y) * W
                            let left = x > 0 ? row[x - 1] : 0, right = x < W - 1 ? row[x + 1] : 0
                            value += center[k * C + c] * row[x] + neighbours[k * C + c] * (left + right)
                        }
                        output.data[((n * classes + k) * H + y) * W + x] = value
                    }
                }
            }
        }
        return output
    }

    func backward(_ dLogits: Tensor) {}
    var summary: String { "mirror-equivariant test network" }
    func forwardMultiplyAdds(height: Int, width: Int) -> Double { 0 }
}

import ABNData
import ABNTensor
import Foundation
import Testing

/// Renders one sample through `pipeline`: (C, H, W) values and, for a mask, (H, W) ids.
func render(_ pipeline: SamplePipeline, _ sample: Sample, index: Int, epoch: Int?, height: Int, width: Int) -> (image: [Float], mask: [UInt8]) {
    var image = [Float](repeating: .nan, count: sample.image.channels * height * width)
    var mask = [UInt8](repeating: 0, count: height * width)
    image.withUnsafeMutableBufferPointer { out in
        mask.withUnsafeMutableBufferPointer { m in
            pipeline.render(sample, index: index, epoch: epoch, height: height, width: width, image: out.baseAddress!, mask: m.baseAddress!)
        }
    }
    return (image, mask)
}

@Suite("Sample pipeline")
struct SamplePipelineTests {
    /// A 3-channel 4x6 image whose pixel (y, x, c) is 40 y + 6 x + c, and a mask of y * 6 + x.
    let sample: Sample = {
        let pixels: [UInt8] = (0..<72).map { (i: Int) -> UInt8 in
            let y = i / 18, x = i / 3 % 6, c = i % 3
            return UInt8(40 * y + 6 * x + c)
        }
        let mask: [UInt8] = (0..<24).map { UInt8($0) }
        return Sample(image: Image8(width: 6, height: 4, channels: 3, pixels: pixels), target: .mask(Image8(width: 6, height: 4, channels: 1, pixels: mask)))
    }()

    @Test("evaluation keeps the whole image, normalized per channel; the mask is copied")
    func evaluationIsIdentity() {
        let p = SamplePipeline(geometry: .scaledCrop(cropHeight: 8, cropWidth: 8, minScale: 0.5, maxScale: 2), mean: [0.1, 0.2, 0.3],
                               std: [0.5, 0.25, 1], augment: true, flip: true, seed: 3)
        #expect(p.outputSize(height: 4, width: 6, training: false) == (4, 6))
        let (image, mask) = render(p, sample, index: 5, epoch: nil, height: 4, width: 6)
        #expect(mask == (0..<24).map(UInt8.init))
        for c in 0..<3 {
            for y in 0..<4 {
                for x in 0..<6 {
                    let want = (Float(40 * y + 6 * x + c) / 255 - p.mean[c]) / p.std[c]
                    #expect(abs(image[(c * 4 + y) * 6 + x] - want) < 1e-5)
                }
            }
        }
    }

    @Test("a training crop larger than the image pads the image with the mean (0) and the mask with 255")
    func paddedCrop() {
        let p = SamplePipeline(geometry: .scaledCrop(cropHeight: 6, cropWidth: 9, minScale: 1, maxScale: 1), mean: [0, 0, 0],
                               std: [1, 1, 1], augment: false, flip: false, seed: 0)
        let (image, mask) = render(p, sample, index: 0, epoch: 0, height: 6, width: 9)
        // without augmentation the image sits in the middle: rows 1...4, columns 1...6
        #expect(mask[0] == 255 && mask[1 * 9 + 1] == 0 && mask[4 * 9 + 6] == 23 && mask[5 * 9 + 8] == 255)
        #expect(image[0] == 0 && abs(image[1 * 9 + 1] - 0) < 1e-6 && abs(image[4 * 9 + 6] - Float(40 * 3 + 6 * 5) / 255) < 1e-6)
        #expect(mask.filter { $0 == 255 }.count == 6 * 9 - 24)
    }

    @Test("random scale, crop and flip are a function of (seed, epoch, sample): the same whichever batch; another epoch differs")
    func deterministic() {
        let p = SamplePipeline(geometry: .scaledCrop(cropHeight: 5, cropWidth: 5, minScale: 0.75, maxScale: 2), mean: [0.5, 0.5, 0.5],
                               std: [0.25, 0.25, 0.25], augment: true, flip: true, seed: 11)
        let a = render(p, sample, index: 7, epoch: 2, height: 5, width: 5)
        let b = render(p, sample, index: 7, epoch: 2, height: 5, width: 5)
        #expect(a.image == b.image && a.mask == b.mask)
        let others = (3...12).map { render(p, sample, index: 7, epoch: $0, height: 5, width: 5) }
        #expect(others.contains { $0.mask != a.mask })
        // every label is one of the source mask's, or 255 where padded
        #expect(others.allSatisfy { $0.mask.allSatisfy { $0 < 24 || $0 == 255 } })
    }

    @Test("a flip mirrors the image and the mask together")
    func flipMirrors() {
        let p = SamplePipeline(geometry: .scaledCrop(cropHeight: 4, cropWidth: 6, minScale: 1, maxScale: 1), mean: [0, 0, 0],
                               std: [1, 1, 1], augment: true, flip: true, seed: 5)
        let straight = render(p, sample, index: 0, epoch: nil, height: 4, width: 6)
        var mirrored: (image: [Float], mask: [UInt8])?
        for epoch in 0..<20 {
            let r = render(p, sample, index: 0, epoch: epoch, height: 4, width: 6)
            if r.mask != straight.mask { mirrored = r; break }
        }
        guard let m = mirrored else { Issue.record("20 epochs without a flip"); return }
        for y in 0..<4 {
            for x in 0..<6 {
                #expect(m.mask[y * 6 + x] == straight.mask[y * 6 + 5 - x])
                #expect(m.image[(1 * 4 + y) * 6 + x] == straight.image[(1 * 4 + y) * 6 + 5 - x])
            }
        }
    }

    @Test("scaling by 2 doubles the mask by nearest pixels and the image by PyTorch's bilinear rule")
    func scaleTwo() {
        let gray = Sample(image: Image8(width: 2, height: 1, channels: 1, pixels: [0, 255]), target: .mask(Image8(width: 2, height: 1, channels: 1, pixels: [1, 2])))
        let p = SamplePipeline(geometry: .scaledCrop(cropHeight: 2, cropWidth: 4, minScale: 2, maxScale: 2), mean: [0], std: [1],
                               augment: true, flip: false, seed: 0)
        let r = render(p, gray, index: 0, epoch: 0, height: 2, width: 4)
        #expect(r.mask == [1, 1, 2, 2, 1, 1, 2, 2])
        // align_corners=False: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
        let want: [Float] = [0, 0.25, 0.75, 1]
        #expect(zip(r.image.prefix(4), want).allSatisfy { abs($0 - $1) < 1e-6 }, "\(r.image)")
    }

    @Test("classification: the same image at its size, shifted by up to the padding with a black border")
    func classification() {
        let image = Image8(width: 5, height: 5, channels: 1, pixels: (0..<25).map { UInt8(10 * $0) })
        let s = Sample(image: image, target: .label(3))
        let p = SamplePipeline(geometry: .resized(height: 5, width: 5, padding: 2), mean: [0.2], std: [0.5], augment: true, flip: true, seed: 1)
        let plain = render(p, s, index: 0, epoch: nil, height: 5, width: 5).image
        let scale: Float = 1 / (255 * 0.5), shift: Float = -0.2 / 0.5
        let want: [Float] = (0..<25).map { (i: Int) -> Float in Float(10 * i) * scale + shift }
        #expect(plain == want)
        let black: Float = -0.2 / 0.5
        let shifted = (0..<30).map { render(p, s, index: $0, epoch: 0, height: 5, width: 5).image }
        #expect(shifted.contains { $0.contains(black) && $0 != plain })
        #expect(shifted.allSatisfy { $0.allSatisfy { v in v == black || plain.contains(v) } })
    }

    /// A 100x50 gray image whose left half is class 1 (dark) and right half class 2 (bright).
    let halves: Sample = {
        let pixels = (0..<5000).map { UInt8($0 % 100 < 50 ? 40 : 200) }
        let mask = (0..<5000).map { UInt8($0 % 100 < 50 ? 1 : 2) }
        return Sample(image: Image8(width: 100, height: 50, channels: 1, pixels: pixels), target: .mask(Image8(width: 100, height: 50, channels: 1, pixels: mask)))
    }()

    @Test("base edges fit the image's short and long sides (aspect kept) before the random scale, in either orientation")
    func baseSize() {
        // 100x50 (landscape) with edges [20, 40]: min(20 / 50, 40 / 100) = 0.4, so 40x20
        let p = SamplePipeline(geometry: .scaledCrop(cropHeight: 20, cropWidth: 40, minScale: 1, maxScale: 1, baseShort: 20, baseLong: 40),
                               mean: [0], std: [1], augment: false, flip: false, seed: 0)
        let (_, mask) = render(p, halves, index: 0, epoch: 0, height: 20, width: 40)
        // the whole image, scaled by 0.4, fills the crop exactly: the class boundary lands at column 20
        #expect(!mask.contains(255))
        for y in 0..<20 { #expect(Array(mask[y * 40..<y * 40 + 40]) == Array(repeating: 1, count: 20) + Array(repeating: 2, count: 20)) }

        // the same image standing (50 wide, 100 high) scales by 0.4 too, to 20x40, where fitting
        // a [height 20, width 40] box would have made it 10x20
        let standing = Sample(image: Image8(width: 50, height: 100, channels: 1, pixels: (0..<5000).map { UInt8($0 / 50 < 50 ? 40 : 200) }),
                              target: .mask(Image8(width: 50, height: 100, channels: 1, pixels: (0..<5000).map { UInt8($0 / 50 < 50 ? 1 : 2) })))
        let q = SamplePipeline(geometry: .scaledCrop(cropHeight: 40, cropWidth: 20, minScale: 1, maxScale: 1, baseShort: 20, baseLong: 40),
                               mean: [0], std: [1], augment: false, flip: false, seed: 0)
        let (_, upright) = render(q, standing, index: 0, epoch: 0, height: 40, width: 20)
        #expect(!upright.contains(255))
        #expect(upright == Array(repeating: 1, count: 20 * 20) + Array(repeating: 2, count: 20 * 20))
    }

    @Test("photometric jitter changes training images, as a function of (seed, epoch, sample), within 0...255; masks and evaluation are untouched")
    func photometric() {
        let plain = SamplePipeline(geometry: .scaledCrop(cropHeight: 50, cropWidth: 100, minScale: 1, maxScale: 1), mean: [0], std: [1],
                                   augment: true, flip: false, seed: 4)
        let jittered = SamplePipeline(geometry: plain.geometry, mean: [0], std: [1], augment: true, flip: false, photometric: true, seed: 4)
        var changed = 0
        for index in 0..<8 {
            let a = render(plain, halves, index: index, epoch: 1, height: 50, width: 100)
            let b = render(jittered, halves, index: index, epoch: 1, height: 50, width: 100)
            #expect(b.mask == a.mask)
            #expect(b.image == render(jittered, halves, index: index, epoch: 1, height: 50, width: 100).image)
            #expect(b.image.allSatisfy { $0 >= 0 && $0 <= 1 })
            if b.image != a.image { changed += 1 }
        }
        // each of brightness and contrast is drawn with probability 1/2: 8 samples all unchanged has probability 1/256
        #expect(changed > 0)
        #expect(render(jittered, halves, index: 0, epoch: nil, height: 50, width: 100).image == render(plain, halves, index: 0, epoch: nil, height: 50, width: 100).image)
    }
}

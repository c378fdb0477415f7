import ABNTensor
import ABNTestSupport
import Foundation
import Testing

/// A bilinear resize case computed by PyTorch (python/make_fixtures.py).
struct ResizeCase: Decodable {
    let name: String
    let shape: [Int]
    let size: [Int]
    let x, y: [Double]
}

@Suite("Segmentation kernels: bilinear resize, pixel loss, concatenation, broadcast add, confusion")
struct SegmentationKernelTests {
    static let resizeFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/resize")

    static var resizeCases: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: resizeFixtures.path)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
    }

    @Test("the resize fixtures are there")
    func fixturesPresent() { #expect(Self.resizeCases.count >= 4, "run python/make_fixtures.py") }

    @Test("bilinear resize matches PyTorch's interpolate(align_corners=False)", arguments: resizeCases)
    func bilinearMatchesPyTorch(_ file: String) throws {
        let c = try JSONDecoder().decode(ResizeCase.self, from: Data(contentsOf: Self.resizeFixtures.appendingPathComponent(file)))
        let x = Tensor(c.x.map(Float.init), shape: c.shape)
        let outShape = [c.shape[0], c.shape[1], c.size[0], c.size[1]]
        let y = Tensor(zeros: outShape)
        bilinearUpsampleForward(output: y, input: x)
        expectClose(y.array.map(Double.init), c.y, rtol: 1e-5, atol: 1e-6, c.name)
    }

    @Test("pixel cross-entropy: gradient equals finite differences, ignored pixels take no part, the value matches a direct sum")
    func pixelLoss() {
        let logits = randomTensor([2, 4, 3, 5], seed: 21, scale: 2)
        var masks = (0..<30).map { UInt8($0 % 4) }
        masks[3] = 255; masks[17] = 255
        let g = Tensor(zeros: logits.shape)
        let loss = pixelCrossEntropy(dLogits: g, logits: logits, masks: masks, ignore: 255, normalizer: 7)
        var want = 0.0
        for n in 0..<2 {
            for p in 0..<15 where masks[n * 15 + p] != 255 {
                let values = (0..<4).map { Double(logits[flat: (n * 4 + $0) * 15 + p]) }
                want += log(values.map(exp).reduce(0, +)) - values[Int(masks[n * 15 + p])]
            }
        }
        #expect(abs(loss - want / 7) < 1e-5 * abs(want))
        let numeric = numericalGradient(of: { pixelCrossEntropy(dLogits: nil, logits: logits, masks: masks, ignore: 255, normalizer: 7) },
                                        at: logits, indices: Array(0..<logits.count), step: 1e-2)
        expectClose(g.array.map(Double.init), numeric, rtol: 1e-3, atol: 1e-4, "dLogits")
        for c in 0..<4 { #expect(g[flat: c * 15 + 3] == 0 && g[flat: (4 + c) * 15 + 2] == 0) }  // pixels 3 and 17
    }

    @Test("the upsampled pixel loss equals a bilinear resize followed by the pixel loss; its gradient equals finite differences")
    func upsampledLoss() {
        let logits = randomTensor([2, 3, 4, 5], seed: 31, scale: 2)
        let H = 11, W = 17
        let masks = (0..<2 * H * W).map { i in i % 9 == 4 ? UInt8(255) : UInt8((i / W + i) % 3) }
        let full = Tensor(zeros: [2, 3, H, W])
        bilinearUpsampleForward(output: full, input: logits)
        let expected = pixelCrossEntropy(dLogits: nil, logits: full, masks: masks, ignore: 255, normalizer: 50)
        let got = Tensor(zeros: logits.shape)
        let value = upsampledPixelCrossEntropy(dLogits: got, logits: logits, height: H, width: W, masks: masks, ignore: 255, normalizer: 50)
        #expect(abs(value - expected) <= 1e-6 * abs(expected), "\(value) vs \(expected)")
        let numeric = numericalGradient(of: { upsampledPixelCrossEntropy(dLogits: nil, logits: logits, height: H, width: W, masks: masks,
                                                                         ignore: 255, normalizer: 50) },
                                        at: logits, indices: Array(0..<logits.count), step: 1e-2)
        expectClose(got.array.map(Double.init), numeric, rtol: 1e-3, atol: 1e-4, "dLogits")
    }

    @Test("channel placement and slicing, broadcast add and plane sums are adjoint pairs")
    func adjoints() {
        let a = randomTensor([2, 3, 2, 2], seed: 1), b = randomTensor([2, 1, 2, 2], seed: 2)
        let joined = Tensor(zeros: [2, 4, 2, 2])
        placeChannels(a, into: joined, first: 0)
        placeChannels(b, into: joined, first: 3)
        let back = Tensor(zeros: b.shape)
        channelSlice(back, of: joined, first: 3)
        #expect(back.array == b.array)
        channelSlice(back, of: joined, first: 3, accumulate: true)
        #expect(back.array == b.array.map { $0 * 2 })
        #expect(Array(joined.array[16..<28]) == Array(a.array[12..<24]))  // image 1, channels 0..<3
        // <addBroadcast(y, v), g> - <y, g> == <v, sumPlanes(g)>
        let y = randomTensor([2, 3, 4, 5], seed: 3), v = randomTensor([2, 3], seed: 4), g = randomTensor([2, 3, 4, 5], seed: 5)
        let before = dot(y, g)
        addBroadcast(y, v)
        let sums = Tensor(zeros: [2, 3])
        sumPlanes(sums, g)
        #expect(abs((dot(y, g) - before) - dot(v, sums)) < 1e-4)
    }

    @Test("the confusion matrix counts true class against the argmax, skipping ignored pixels")
    func confusion() {
        // 1 image, 3 classes, 4 pixels: predictions 2, 0, 1, 1
        let logits = Tensor([0, 5, 0, 0, /**/ 0, 0, 5, 5, /**/ 5, 0, 0, 1], shape: [1, 3, 2, 2])
        var counts = [Double](repeating: 0, count: 9)
        accumulateConfusion(&counts, logits: logits, masks: [2, 1, 255, 1], ignore: 255)
        #expect(counts == [0, 0, 0, /**/ 1, 1, 0, /**/ 0, 0, 1])
    }
}

import ABNData
import ABNTensor
import Foundation
import Testing

@Suite("Batch loader")
struct BatchLoaderTests {
    @Test("a prefetched batch equals the batch loaded directly; a sample renders the same at any position of any batch")
    func prefetch() throws {
        let root = try TemporaryFolder("loader")
        for i in 0..<6 {
            let pixels = (0..<(8 * 7 * 3)).map { UInt8(($0 * (i + 3)) % 251) }
            try root.write("train/images/\(i).png", PNGCodec.encode(Image8(width: 8, height: 7, channels: 3, pixels: pixels)))
            try root.write("train/masks/\(i).png", PNGCodec.encode(Image8(width: 8, height: 7, channels: 1, pixels: (0..<56).map { UInt8(($0 + i) % 3) })))
        }
        let set = try SegmentationFolder.open(root: root.path, split: "train")
        let pipeline = SamplePipeline(geometry: .scaledCrop(cropHeight: 6, cropWidth: 6, minScale: 0.8, maxScale: 1.6), mean: [0.4, 0.4, 0.4],
                                      std: [0.3, 0.3, 0.3], augment: true, flip: true, seed: 9)
        let loader = BatchLoader(dataset: set, pipeline: pipeline)
        let direct = try loader.load([4, 1, 3], epoch: 2)
        loader.prefetch([4, 1, 3], epoch: 2)
        let fetched = try loader.batch([4, 1, 3], epoch: 2)
        #expect(fetched.images.array == direct.images.array && fetched.masks == direct.masks)
        #expect(direct.images.shape == [3, 3, 6, 6] && direct.masks.count == 3 * 36 && direct.labels.isEmpty)
        loader.prefetch([0, 2], epoch: 2)  // not what is asked for next: loaded anew
        let other = try loader.batch([1], epoch: 2)
        #expect(Array(other.images.array) == Array(direct.images.array[108..<216]) && Array(other.masks) == Array(direct.masks[36..<72]))
    }
}

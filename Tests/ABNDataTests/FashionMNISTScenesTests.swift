import ABNData
import Foundation
import Testing

@Suite("Fashion-MNIST scenes", .enabled(if: FileManager.default.fileExists(atPath: FashionMNISTTests.root), "needs dataset-fashion-mnist"))
struct FashionMNISTScenesTests {
    @Test("the same arguments write the same bytes; the labels follow the rules; an existing folder is refused")
    func deterministic() throws {
        let root = try TemporaryFolder("scenes")
        let a = root.path + "/a", b = root.path + "/b"
        let scenes = FashionMNISTScenes(size: 64, seed: 3)
        var reports: [Int] = []
        try scenes.write(to: a, train: 12, test: 4, fashionRoot: FashionMNISTTests.root) { done, _ in reports.append(done) }
        try scenes.write(to: b, train: 12, test: 4, fashionRoot: FashionMNISTTests.root) { _, _ in }
        #expect(reports.last == 16)
        for file in ["classes.txt", "train/images/00000.png", "train/masks/00011.png", "test/images/00003.png", "test/masks/00000.png"] {
            let x = FileManager.default.contents(atPath: "\(a)/\(file)"), y = FileManager.default.contents(atPath: "\(b)/\(file)")
            #expect(x != nil && x == y, "\(file) differs")
        }
        let other = try FashionMNISTScenes(size: 64, seed: 4).scene(0, split: .train, garments: FashionMNIST(root: FashionMNISTTests.root, split: .train, limit: 100))
        let set = try SegmentationFolder.open(root: a, split: "train")
        #expect(set.classNames.count == 11 && set.classNames[1] == "T-shirt/top")
        var seen = Set<UInt8>()
        for i in 0..<set.count {
            let s = try set.sample(i)
            guard case .mask(let mask) = s.target else { Issue.record("no mask"); continue }
            seen.formUnion(mask.pixels)
            #expect(mask.pixels.allSatisfy { $0 <= 10 || $0 == 255 })
            #expect(mask.pixels.contains { $0 >= 1 && $0 <= 10 }, "scene \(i) has no garment pixel")
        }
        #expect(seen.contains(0) && seen.contains(255))
        #expect(other.image != (try set.sample(0)).image)  // another seed, another scene
        #expect(dataError { try scenes.write(to: a, train: 1, test: 1, fashionRoot: FashionMNISTTests.root) { _, _ in } }.contains("already exists"))
        #expect(!FileManager.default.fileExists(atPath: a + ".partial-\(getpid())"))
    }
}

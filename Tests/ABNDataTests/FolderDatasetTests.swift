import ABNData
import Foundation
import Testing

/// A temporary folder removed at the end of the test.
final class TemporaryFolder {
    let path: String
    init(_ name: String) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("abn-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `bytes` at `relative` (folders made as needed).
    func write(_ relative: String, _ bytes: [UInt8]) throws {
        let url = URL(fileURLWithPath: path).appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }
}

/// A w x h image of `channels` whose every byte is `value`.
func flat(_ w: Int, _ h: Int, _ channels: Int, _ value: UInt8) -> Image8 {
    Image8(width: w, height: h, channels: channels, pixels: [UInt8](repeating: value, count: w * h * channels))
}

@Suite("Folder data sets")
struct FolderDatasetTests {
    @Test("an image folder: classes from sorted folder names, PNG and JPEG, any size, a limit keeps every class")
    func imageFolder() throws {
        let root = try TemporaryFolder("imagefolder")
        try root.write("train/cat/a.png", PNGCodec.encode(flat(5, 4, 3, 10)))
        try root.write("train/cat/b.jpg", JPEGCodec.encode(flat(8, 8, 3, 200)))
        try root.write("train/ant/c.png", PNGCodec.encode(flat(3, 3, 3, 20)))
        try root.write("train/ant/notes.txt", Array("not an image".utf8))
        try root.write("test/ant/d.png", PNGCodec.encode(flat(3, 3, 1, 30)))
        let train = try ImageFolder(root: root.path, split: "train")
        #expect(train.classNames == ["ant", "cat"] && train.count == 3 && train.channels == 3)
        #expect(Set(zip(train.files.map { ($0 as NSString).lastPathComponent }, train.labels).map { "\($0)=\($1)" }) == ["c.png=0", "a.png=1", "b.jpg=1"])
        let limited = try ImageFolder(root: root.path, split: "train", limit: 2)
        #expect(Set(limited.labels) == [0, 1])
        let test = try ImageFolder(root: root.path, split: "test", classNames: train.classNames, channels: 3)
        let sample = try test.sample(0)
        #expect(sample.image.channels == 3 && sample.target == .label(0))
        try root.write("test/dog/e.png", PNGCodec.encode(flat(3, 3, 3, 30)))
        #expect(dataError { _ = try ImageFolder(root: root.path, split: "test", classNames: train.classNames) }.contains("dog"))
        #expect(dataError { _ = try ImageFolder(root: root.path + "/absent", split: "train") }.contains("does not exist"))
    }

    @Test("a segmentation folder: pairs by name, classes.txt, the mask scan, and refusals that name the file")
    func segmentationFolder() throws {
        let root = try TemporaryFolder("segfolder")
        try root.write("train/images/x.jpg", JPEGCodec.encode(flat(6, 4, 3, 90)))
        try root.write("train/masks/x.png", PNGCodec.encode(Image8(width: 6, height: 4, channels: 1, pixels: [UInt8](repeating: 4, count: 23) + [255])))
        try root.write("train/images/y.png", PNGCodec.encode(flat(5, 5, 1, 90)))
        try root.write("train/masks/y.png", PNGCodec.encode(flat(5, 5, 1, 1)))
        try root.write("val/images/z.png", PNGCodec.encode(flat(5, 5, 3, 90)))
        try root.write("val/masks/z.png", PNGCodec.encode(flat(5, 5, 1, 2)))
        // no classes.txt: the largest id in the masks (4) makes 5 classes
        let scanned = try SegmentationFolder.open(root: root.path, split: "train")
        #expect(scanned.classNames.count == 5 && scanned.count == 2 && scanned.channels == 3)
        let y = try scanned.sample(1)
        #expect(y.image.channels == 3 && y.image.width == 5)  // a gray image given the set's channels
        try root.write("classes.txt", Array("background\nshirt\nbag\ncoat\nshoe\nhat\n\n".utf8))
        let named = try SegmentationFolder.open(root: root.path, split: "train")
        #expect(named.classNames == ["background", "shirt", "bag", "coat", "shoe", "hat"])
        let test = try SegmentationFolder.open(root: root.path, split: "test", classNames: named.classNames, channels: 3)
        #expect(test.count == 1)  // val/ serves as the test split
        // an id beyond the classes, a mask of another size, a missing mask
        let three = ["a", "b", "c"]
        #expect(dataError { _ = try SegmentationFolder.open(root: root.path, split: "train", classNames: three).sample(0) }.contains("holds id 4"))
        try root.write("train/masks/y.png", PNGCodec.encode(flat(4, 5, 1, 1)))
        #expect(dataError { _ = try named.sample(1) }.contains("must have its image's size"))
        try root.write("train/images/w.png", PNGCodec.encode(flat(5, 5, 3, 90)))
        #expect(dataError { _ = try SegmentationFolder.open(root: root.path, split: "train") }.contains("has no mask"))
    }
}

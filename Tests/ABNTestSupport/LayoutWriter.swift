import ABNData
import ABNTensor
import Foundation

/// Writes small segmentation sets in the layouts users bring (Cityscapes, Pascal VOC, ADE20K,
/// Mapillary Vistas, COCO-Stuff), for tests on a bare clone. Each image shows horizontal bands, one class per
/// band, each class in its own color (plus noise), at several sizes; the masks store the ids as
/// the layout does: Cityscapes label ids (ids that the table ignores included) and optionally
/// train ids, VOC palette PNGs with 255 on band borders, ADE20K gray PNGs with 0 ("other") on
/// some bands, Vistas label ids of a 21-label table (v2.0 release layout) whose labels 5 and 20
/// are not evaluated, on band borders and some bands, COCO-Stuff stuffthingmaps ids (an id no
/// category uses on some bands, 255 on borders) and optionally train ids.
public enum LayoutWriter {
    public enum Layout: String, CaseIterable, Sendable {
        case cityscapes, voc, ade20k, vistas
        case cocoStuff = "coco-stuff"
    }

    /// Image sizes (width, height), cycled through.
    static let sizes = [(64, 48), (56, 56), (72, 40)]

    /// Writes `train` and `test` samples of `layout` under `root`; `trainIDs` also writes
    /// Cityscapes' and COCO-Stuff's labelTrainIds masks. Returns, per split, the classes (after the layout's own
    /// map) that each written mask holds, image by image, as the loader should read them.
    @discardableResult
    public static func write(_ layout: Layout, root: String, train: Int = 6, test: Int = 3, seed: UInt64 = 1,
                             trainIDs: Bool = false) throws -> [String: [[UInt8]]] {
        var rng = SplitMix64(seed: seed)
        var expected: [String: [[UInt8]]] = [:]
        let splits = switch layout {
        case .ade20k, .vistas: [("training", train), ("validation", test)]
        case .cocoStuff: [("train2017", train), ("val2017", test)]
        case .cityscapes, .voc: [("train", train), ("val", test)]
        }
        if layout == .vistas { try writeVistasTable(root: root) }
        for (split, count) in splits {
            var masks: [[UInt8]] = []
            var names: [String] = []
            for i in 0..<count {
                let (width, height) = sizes[i % sizes.count]
                let bands = (0..<4).map { _ in Int(rng.next() % 19) }
                let name = layout == .cityscapes ? "city\(i % 2)_\(String(format: "%06d", i))_000019" : "\(split)_\(String(format: "%04d", i))"
                names.append(name)
                var image = [UInt8](repeating: 0, count: width * height * 3)
                var stored = [UInt8](repeating: 0, count: width * height)
                var classes = [UInt8](repeating: 0, count: width * height)
                for y in 0..<height {
                    let band = bands[min(3, y * 4 / height)]
                    let border = y > 0 && bands[min(3, (y - 1) * 4 / height)] != band
                    let (id, label) = storedID(layout, band: band, border: border)
                    for x in 0..<width {
                        let p = y * width + x
                        stored[p] = id
                        classes[p] = label
                        for c in 0..<3 { image[3 * p + c] = UInt8(clamping: (band * 37 + c * 71) % 200 + Int(rng.next() % 40)) }
                    }
                }
                masks.append(classes)
                try save(layout, root: root, split: split, name: name, image: Image8(width: width, height: height, channels: 3, pixels: image),
                         mask: Image8(width: width, height: height, channels: 1, pixels: stored), trainIDs: trainIDs ? classes : nil)
            }
            if layout == .voc {
                try writeFile((root as NSString).appendingPathComponent("ImageSets/Segmentation/\(split).txt"),
                              Array((names.joined(separator: "\n") + "\n").utf8))
            }
            expected[split] = layout == .cityscapes ? sortedByPath(masks, names) : masks
        }
        return expected
    }

    /// The stored id and the class it stands for, for a band of class `band` (0-18).
    private static func storedID(_ layout: Layout, band: Int, border: Bool) -> (id: UInt8, label: UInt8) {
        switch layout {
        case .cityscapes:
            // the label id of train id `band`, except band 0 rows stored as id 4 ("static", ignored)
            let labelIDs: [UInt8] = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
            return band == 3 ? (4, 255) : (labelIDs[band], UInt8(band))
        case .voc:
            let label = UInt8(band % 21)
            return border ? (255, 255) : (label, label)
        case .ade20k:
            // id 0 is "other" (ignored); id k is class k - 1
            return band % 5 == 0 ? (0, 255) : (UInt8(band + 1), UInt8(band))
        case .vistas:
            // labels 0-4 and 6-19 are the classes 0-18; 5 (on borders) and 20 (on bands of class 6) are ignored
            if border { return (5, 255) }
            return band == 6 ? (20, 255) : (UInt8(band < 5 ? band : band + 1), UInt8(band))
        case .cocoStuff:
            // the stuffthingmaps id of class `band`: ids 0-10 are classes 0-10, id 11 is unused
            // (stored on bands of class 2, ignored), 12-24 are classes 11-23
            if border { return (255, 255) }
            return band == 2 ? (11, 255) : (UInt8(band < 11 ? band : band + 1), UInt8(band))
        }
    }

    private static func save(_ layout: Layout, root: String, split: String, name: String, image: Image8, mask: Image8, trainIDs: [UInt8]?) throws {
        func path(_ relative: String) -> String { (root as NSString).appendingPathComponent(relative) }
        switch layout {
        case .cityscapes:
            let city = String(name.prefix { $0 != "_" })
            try writeFile(path("leftImg8bit/\(split)/\(city)/\(name)_leftImg8bit.png"), PNGCodec.encode(image))
            try writeFile(path("gtFine/\(split)/\(city)/\(name)_gtFine_labelIds.png"), PNGCodec.encode(mask))
            if let trainIDs {
                let train = Image8(width: mask.width, height: mask.height, channels: 1, pixels: trainIDs)
                try writeFile(path("gtFine/\(split)/\(city)/\(name)_gtFine_labelTrainIds.png"), PNGCodec.encode(train))
            }
        case .voc:
            try writeFile(path("JPEGImages/\(name).jpg"), JPEGCodec.encode(image, quality: 95))
            let palette = MaskPalette.voc.colors
            try writeFile(path("SegmentationClass/\(name).png"), PNGCodec.encode(indices: mask, palette: palette))
        case .ade20k:
            try writeFile(path("images/\(split)/\(name).jpg"), JPEGCodec.encode(image, quality: 95))
            try writeFile(path("annotations/\(split)/\(name).png"), PNGCodec.encode(mask))
        case .vistas:
            try writeFile(path("\(split)/images/\(name).jpg"), JPEGCodec.encode(image, quality: 95))
            try writeFile(path("\(split)/v1.2/labels/\(name).png"), PNGCodec.encode(mask))
        case .cocoStuff:
            try writeFile(path("images/\(split)/\(name).jpg"), JPEGCodec.encode(image, quality: 95))
            try writeFile(path("annotations/\(split)/\(name).png"), PNGCodec.encode(mask))
            if let trainIDs {
                let train = Image8(width: mask.width, height: mask.height, channels: 1, pixels: trainIDs)
                try writeFile(path("annotations/\(split)/\(name)_labelTrainIds.png"), PNGCodec.encode(train))
            }
        }
    }

    /// The readable names of the Vistas table's labels, and the classes' names (its evaluated labels).
    public static let vistasLabels = (0..<21).map { "Label \($0)" }
    public static let vistasClasses = vistasLabels.indices.filter { $0 != 5 && $0 != 20 }.map { vistasLabels[$0] }

    /// ROOT/config_v1.2.json: 21 labels, 5 and 20 not evaluated, as the release's table lists them.
    private static func writeVistasTable(root: String) throws {
        let labels = vistasLabels.enumerated().map { id, readable in
            "{\"name\": \"test--label-\(id)\", \"readable\": \"\(readable)\", \"color\": [\(id * 12), \(255 - id * 12), \(id * 5)], "
                + "\"instances\": false, \"evaluate\": \(id != 5 && id != 20)}"
        }
        try writeFile((root as NSString).appendingPathComponent("config_v1.2.json"), Array("{\"labels\": [\(labels.joined(separator: ", "))]}".utf8))
    }

    /// Masks in the order of their files' paths (the loader sorts Cityscapes' files by path).
    private static func sortedByPath(_ masks: [[UInt8]], _ names: [String]) -> [[UInt8]] {
        zip(names, masks).sorted { (String($0.0.prefix { $0 != "_" }), $0.0) < (String($1.0.prefix { $0 != "_" }), $1.0) }.map(\.1)
    }

    private static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

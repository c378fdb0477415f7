import ABNData
import ABNTestSupport
import Foundation
import Testing

@Suite("Segmentation layouts: Cityscapes, Pascal VOC, ADE20K, Mapillary Vistas, COCO-Stuff")
struct SegmentationLayoutTests {
    /// A fresh folder, removed afterwards.
    func withFolder(_ body: (String) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("abn-layout-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try body(root)
    }

    static func open(_ layout: LayoutWriter.Layout, _ root: String, _ split: String) throws -> LabeledSegmentationSet {
        switch layout {
        case .cityscapes: try Cityscapes.open(root: root, split: split)
        case .voc: try PascalVOC.open(root: root, split: split)
        case .ade20k: try ADE20K.open(root: root, split: split)
        case .vistas: try MapillaryVistas.open(root: root, split: split)
        case .cocoStuff: try COCOStuff.open(root: root, split: split)
        }
    }

    @Test("every split loads with the layout's classes, and each mask reads as the classes it was written for", arguments: LayoutWriter.Layout.allCases)
    func masksMapToClasses(layout: LayoutWriter.Layout) throws {
        try withFolder { root in
            let expected = try LayoutWriter.write(layout, root: root)
            for (split, masks) in expected {
                let set = try Self.open(layout, root, split)
                #expect(set.count == masks.count)
                #expect(set.classNames.count == [LayoutWriter.Layout.cityscapes: 19, .voc: 21, .ade20k: 150, .vistas: 19, .cocoStuff: 171][layout])
                for i in 0..<set.count {
                    let sample = try set.sample(i)
                    guard case .mask(let mask) = sample.target else { Issue.record("not a mask"); return }
                    #expect(mask.pixels == masks[i], "\(layout) \(split) sample \(i)")
                    #expect(try set.imageSize(i) == (sample.image.height, sample.image.width))
                }
            }
        }
    }

    @Test("Cityscapes reads train ids where the user made them")
    func cityscapesTrainIDs() throws {
        try withFolder { root in
            let expected = try LayoutWriter.write(.cityscapes, root: root, trainIDs: true)
            let set = try Cityscapes.open(root: root, split: "train")
            #expect(set.masks.allSatisfy { $0.hasSuffix("_gtFine_labelTrainIds.png") })
            guard case .mask(let mask) = try set.sample(0).target else { Issue.record("not a mask"); return }
            #expect(mask.pixels == expected["train"]![0])
        }
    }

    @Test("COCO-Stuff: the stuffthingmaps ids as mmsegmentation's converter maps them; train ids where the user made them")
    func cocoStuff() throws {
        // samples of mmsegmentation's clsID_to_trID (coco_stuff164k.py): each used id, its train id
        let map = COCOStuff.categoryIDs
        let samples: [(id: UInt8, trainID: UInt8)] = [(0, 0), (10, 10), (12, 11), (24, 23), (26, 24), (27, 25), (30, 26), (43, 39), (45, 40),
                                                      (89, 79), (91, 80), (181, 170)]
        let stored = Image8(width: samples.count + 3, height: 1, channels: 1, pixels: samples.map(\.id) + [11, 90, 255])
        #expect(try map.apply(to: stored, classes: 171, source: "m").pixels == samples.map(\.trainID) + [255, 255, 255])
        #expect(COCOStuff.classNames.count == 171 && COCOStuff.classNames[80] == "banner" && COCOStuff.classNames[170] == "wood")
        try withFolder { root in
            let expected = try LayoutWriter.write(.cocoStuff, root: root, trainIDs: true)
            let set = try COCOStuff.open(root: root, split: "val2017")
            #expect(set.masks.allSatisfy { $0.hasSuffix("_labelTrainIds.png") })
            guard case .mask(let mask) = try set.sample(0).target else { Issue.record("not a mask"); return }
            #expect(mask.pixels == expected["val2017"]![0])
        }
    }

    @Test("Mapillary Vistas: the v1 release layout too; classes named and colored by the table; a missing table is refused")
    func vistas() throws {
        try withFolder { root in
            let expected = try LayoutWriter.write(.vistas, root: root)
            let table = try MapillaryVistas.labelTable(root: root)
            #expect(table.classNames == LayoutWriter.vistasClasses)
            let colors = table.palette.colors
            #expect(colors[0] == (0, 255, 0) && colors[5] == (72, 183, 30) && colors[18] == (228, 27, 95))  // labels 0, 6 and 19
            #expect(try table.labelMap.storedIDs(classes: 19) == [0, 1, 2, 3, 4] + (6...19).map(UInt8.init))
            // the v1 releases: ROOT/config.json and SPLIT/labels
            let files = FileManager.default
            try files.moveItem(atPath: root + "/config_v1.2.json", toPath: root + "/config.json")
            for split in ["training", "validation"] {
                try files.moveItem(atPath: "\(root)/\(split)/v1.2/labels", toPath: "\(root)/\(split)/labels")
            }
            let set = try MapillaryVistas.open(root: root, split: "validation")
            #expect(set.masks.allSatisfy { $0.contains("/validation/labels/") })
            guard case .mask(let mask) = try set.sample(1).target else { Issue.record("not a mask"); return }
            #expect(mask.pixels == expected["validation"]![1])
            try files.removeItem(atPath: root + "/config.json")
            #expect(dataError { _ = try MapillaryVistas.open(root: root, split: "training") }.contains("cannot read the label table"))
        }
    }

    @Test("a missing mask, a mask of another size and an unmapped id are refused, naming the file")
    func refusals() throws {
        try withFolder { root in
            try LayoutWriter.write(.ade20k, root: root)
            let set = try ADE20K.open(root: root, split: "training")
            // an id the map does not list
            let strict = try LabeledSegmentationSet(images: set.images, masks: set.masks, classNames: ADE20K.classNames,
                                                    labelMap: LabelMap(pairs: [(id: 1, label: 0)]), source: root)
            let unmapped = dataError { _ = try strict.sample(0) }
            #expect(unmapped.contains(set.masks[0]) && unmapped.contains("does not list"), "\(unmapped)")
            // a mask of another size
            try Data(PNGCodec.encode(Image8(width: 3, height: 3, channels: 1, pixels: Array(repeating: 1, count: 9))))
                .write(to: URL(fileURLWithPath: set.masks[1]))
            let size = dataError { _ = try set.sample(1) }
            #expect(size.contains(set.masks[1]) && size.contains("3x3"), "\(size)")
            // a missing mask
            try FileManager.default.removeItem(atPath: set.masks[2])
            let missing = dataError { _ = try ADE20K.open(root: root, split: "training") }
            #expect(missing.contains(set.images[2]) && missing.contains("has no mask"), "\(missing)")
        }
    }

    @Test("reduce_zero_label ignores 0 and moves the other ids down by one; 255 stays ignored")
    func reducedZero() throws {
        let stored = Image8(width: 4, height: 1, channels: 1, pixels: [0, 1, 150, 255])
        #expect(try LabelMap.reducedZero.apply(to: stored, classes: 150, source: "m").pixels == [255, 0, 149, 255])
        #expect(dataError { _ = try LabelMap.reducedZero.apply(to: stored, classes: 149, source: "m") }.contains("outside 0...148"))
    }

    @Test("each class's stored id, as evaluation scripts read it: Cityscapes' label ids, ADE20K's 1-150, a listed map; a class without one is refused")
    func storedIDs() throws {
        // cityscapesScripts' labels.py: the labelId of each trainId 0-18
        let official: [UInt8] = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
        #expect(try Cityscapes.labelIDs.storedIDs(classes: 19) == official)
        #expect(try LabelMap.reducedZero.storedIDs(classes: 150) == (1...150).map(UInt8.init))
        #expect(try LabelMap.identity.storedIDs(classes: 21) == (0..<21).map(UInt8.init))
        #expect(try LabelMap(pairs: [(id: 9, label: 1), (id: 4, label: 0), (id: 6, label: 1)]).storedIDs(classes: 2) == [4, 6])  // the lowest of two
        #expect(dataError { _ = try Cityscapes.labelIDs.storedIDs(classes: 20) }.contains("class 19 is stored under no id"))
    }
}

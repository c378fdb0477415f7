import Foundation

/// The Cityscapes layout: ROOT/leftImg8bit/SPLIT/CITY/CITY_SEQ_FRAME_leftImg8bit.png with
/// ROOT/gtFine/SPLIT/CITY/CITY_SEQ_FRAME_gtFine_labelTrainIds.png (the 19 training classes, made
/// by cityscapesScripts) or else ..._gtFine_labelIds.png (ids 0-33, mapped to the training
/// classes by the official table, every other id ignored). Splits train and val (test has no
/// public labels).
public enum Cityscapes {
    /// The 19 training classes, by train id.
    public static let classNames = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                                    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                                    "motorcycle", "bicycle"]

    /// The official colors of the 19 classes, by train id (cityscapesScripts' label table).
    public static let palette = MaskPalette(classColors: [
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153), (250, 170, 30),
        (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
        (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ])

    /// labelId -> trainId of the 19 classes (cityscapesScripts' label table); the other ids of
    /// 0-33 are ignored.
    public static let labelIDs = LabelMap(pairs: (0...33).map { (id: $0, label: 255) } + [
        (7, 0), (8, 1), (11, 2), (12, 3), (13, 4), (17, 5), (19, 6), (20, 7), (21, 8), (22, 9), (23, 10), (24, 11), (25, 12),
        (26, 13), (27, 14), (28, 15), (31, 16), (32, 17), (33, 18),
    ].map { (id: $0.0, label: $0.1) })

    /// Opens split `split` (train, val); `labelMap` replaces the layout's own (train ids as stored,
    /// or label ids mapped to train ids by `labelIDs`).
    public static func open(root: String, split: String, labelMap: LabelMap? = nil, channels: Int? = nil, limit: Int = 0) throws -> LabeledSegmentationSet {
        let imageRoot = (root as NSString).appendingPathComponent("leftImg8bit/\(split)")
        let images = try FolderLayout.files(under: imageRoot, endingWith: "_leftImg8bit.png")
        guard let first = images.first else { throw DataError("\(imageRoot) holds no *_leftImg8bit.png image; set data.root to the folder with leftImg8bit/ and gtFine/.") }
        func mask(_ image: String, _ kind: String) -> String {
            let relative = String(image.dropFirst(imageRoot.count))
            return (root as NSString).appendingPathComponent("gtFine/\(split)")
                + relative.replacingOccurrences(of: "_leftImg8bit.png", with: "_gtFine_\(kind).png")
        }
        // train ids where the user made them, else label ids through the table
        let trainIDs = FileManager.default.fileExists(atPath: mask(first, "labelTrainIds"))
        let masks = try LabeledSegmentationSet.masks(of: images) { mask($0, trainIDs ? "labelTrainIds" : "labelIds") }
        let stored = trainIDs ? LabelMap.identity : labelIDs
        return try LabeledSegmentationSet(images: images, masks: masks, classNames: classNames, labelMap: labelMap ?? stored,
                                          channels: channels, limit: limit, source: imageRoot)
    }
}

import Foundation

/// The COCO-Stuff (164k) layout: ROOT/images/SPLIT/NAME.jpg with
/// ROOT/annotations/SPLIT/NAME_labelTrainIds.png (the 171 classes, as mmsegmentation's converter
/// writes them) where present, else ROOT/annotations/SPLIT/NAME.png (stuffthingmaps_trainval2017:
/// ids 0-181, a COCO category id minus one, the ids no category uses ignored); SPLIT train2017
/// and val2017.
public enum COCOStuff {
    /// The 171 classes: COCO's 80 things, then its 91 stuff categories.
    public static let classNames = [
        "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light", "fire hydrant",
        "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
        "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
        "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
        "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
        "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
        "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
        "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet", "ceiling-other",
        "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence",
        "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other", "fruit",
        "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss",
        "mountain", "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield",
        "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow",
        "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
        "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other", "waterdrops",
        "window-blind", "window-other", "wood",
    ]

    /// The stuffthingmaps ids (0-181) that no COCO category uses: categories 12, 26, 29, 30, 45,
    /// 66, 68, 69, 71, 83 and 91.
    static let unusedIDs: Set<Int> = [11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90]

    /// stuffthingmaps id -> class: the used ids in order, the unused ones ignored.
    public static let categoryIDs: LabelMap = {
        let used = (0...181).filter { !unusedIDs.contains($0) }
        return LabelMap(pairs: unusedIDs.map { (id: $0, label: 255) } + used.enumerated().map { (id: $0.element, label: $0.offset) })
    }()

    /// Opens split `split` (train2017, val2017); `labelMap` replaces the layout's own (train ids
    /// as stored, or stuffthingmaps ids through `categoryIDs`).
    public static func open(root: String, split: String, labelMap: LabelMap? = nil, channels: Int? = nil, limit: Int = 0) throws -> LabeledSegmentationSet {
        let imageDirectory = (root as NSString).appendingPathComponent("images/\(split)")
        let images = try FolderLayout.files(under: imageDirectory, endingWith: ".jpg")
        guard let first = images.first else { throw DataError("\(imageDirectory) holds no .jpg image; set data.root to the folder with images/ and annotations/.") }
        func mask(_ image: String, _ suffix: String) -> String {
            (root as NSString).appendingPathComponent("annotations/\(split)") + String(image.dropFirst(imageDirectory.count).dropLast(".jpg".count)) + suffix
        }
        // train ids where the user made them, else the stuffthingmaps ids through the table
        let trainIDs = FileManager.default.fileExists(atPath: mask(first, "_labelTrainIds.png"))
        let masks = try LabeledSegmentationSet.masks(of: images) { mask($0, trainIDs ? "_labelTrainIds.png" : ".png") }
        return try LabeledSegmentationSet(images: images, masks: masks, classNames: classNames, labelMap: labelMap ?? (trainIDs ? .identity : categoryIDs),
                                          channels: channels, limit: limit, source: imageDirectory)
    }
}

import Foundation

/// The ADE20K (SceneParsing, 150 classes) layout: ROOT/images/SPLIT/NAME.jpg with
/// ROOT/annotations/SPLIT/NAME.png, SPLIT training or validation. The masks store 0 for
/// "other" and 1-150 for the classes: 0 is ignored and the classes move down by one (as
/// `data.reduce_zero_label` does for other layouts).
public enum ADE20K {
    /// The 150 classes, by class id after the shift.
    public static let classNames = [
        "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet", "sidewalk", "person",
        "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea",
        "mirror", "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
        "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator",
        "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
        "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
        "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light", "truck",
        "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole",
        "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
        "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
        "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
        "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier",
        "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
    ]

    /// Opens split `split` (training, validation); `labelMap` replaces the shift.
    public static func open(root: String, split: String, labelMap: LabelMap? = nil, channels: Int? = nil, limit: Int = 0) throws -> LabeledSegmentationSet {
        let imageDirectory = (root as NSString).appendingPathComponent("images/\(split)")
        let images = try FolderLayout.files(under: imageDirectory, endingWith: ".jpg")
        guard !images.isEmpty else { throw DataError("\(imageDirectory) holds no .jpg image; set data.root to the folder with images/ and annotations/ (ADEChallengeData2016).") }
        let masks = try LabeledSegmentationSet.masks(of: images) { image in
            let relative = String(image.dropFirst(imageDirectory.count).dropLast(".jpg".count))
            return (root as NSString).appendingPathComponent("annotations/\(split)") + relative + ".png"
        }
        return try LabeledSegmentationSet(images: images, masks: masks, classNames: classNames,
                                          labelMap: labelMap ?? .reducedZero, channels: channels, limit: limit,
                                          source: imageDirectory)
    }
}

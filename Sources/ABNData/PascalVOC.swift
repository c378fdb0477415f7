import Foundation

/// The Pascal VOC 2012 layout: ROOT/JPEGImages/NAME.jpg with ROOT/SegmentationClass/NAME.png
/// (palette PNGs: the index is the class, 0-20, 255 on object borders), the names of a split
/// listed in ROOT/ImageSets/Segmentation/SPLIT.txt (train, val, or e.g. trainaug).
public enum PascalVOC {
    /// The 20 object classes after the background.
    public static let classNames = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                                    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
                                    "tvmonitor"]

    /// Opens split `split`; `labelMap` maps the stored indices (identity by default).
    public static func open(root: String, split: String, labelMap: LabelMap = .identity, channels: Int? = nil, limit: Int = 0) throws -> LabeledSegmentationSet {
        let list = (root as NSString).appendingPathComponent("ImageSets/Segmentation/\(split).txt")
        guard let text = try? String(contentsOfFile: list, encoding: .utf8) else {
            throw DataError("cannot read \(list); set data.root to the folder with JPEGImages/, SegmentationClass/ and ImageSets/ (VOC2012).")
        }
        let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let images = names.map { (root as NSString).appendingPathComponent("JPEGImages/\($0).jpg") }
        for image in images where !FileManager.default.fileExists(atPath: image) {
            throw DataError("\(list) lists \(((image as NSString).lastPathComponent as NSString).deletingPathExtension), but \(image) does not exist.")
        }
        let masks = try LabeledSegmentationSet.masks(of: images) { image in
            let name = ((image as NSString).lastPathComponent as NSString).deletingPathExtension
            return (root as NSString).appendingPathComponent("SegmentationClass/\(name).png")
        }
        return try LabeledSegmentationSet(images: images, masks: masks, classNames: classNames, labelMap: labelMap, channels: channels,
                                          limit: limit, source: list)
    }
}

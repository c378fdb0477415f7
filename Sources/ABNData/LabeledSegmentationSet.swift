import Foundation

/// A segmentation split as pairs of files: images (PNG or JPEG, any size) and their masks (8-bit
/// gray or palette PNGs of the image's size), the mask ids becoming classes through a label map.
/// Each sample is read when asked for, so a set larger than memory streams. The layouts
/// (`SegmentationFolder`, `Cityscapes`, `PascalVOC`, `ADE20K`, `MapillaryVistas`, `COCOStuff`)
/// find the pairs.
public struct LabeledSegmentationSet: Dataset {
    public let classNames: [String]
    public let channels: Int
    public var task: TaskKind { .segmentation }
    public var count: Int { images.count }
    /// Image paths and the paths of their masks.
    public let images: [String]
    public let masks: [String]
    public let labelMap: LabelMap

    /// `channels` nil takes the first image's. `limit` > 0 keeps the first `limit` pairs.
    public init(images: [String], masks: [String], classNames: [String], labelMap: LabelMap = .identity, channels: Int? = nil,
                limit: Int = 0, source: String) throws {
        precondition(images.count == masks.count, "one mask per image")
        guard !images.isEmpty else { throw DataError("\(source) holds no image with a mask.") }
        guard classNames.count >= 2, classNames.count <= 255 else {
            throw DataError("a segmentation set needs 2 to 255 classes (255 marks ignored pixels); \(source) has \(classNames.count).")
        }
        self.images = FolderLayout.limited(images, limit)
        self.masks = FolderLayout.limited(masks, limit)
        self.classNames = classNames
        self.labelMap = labelMap
        self.channels = try channels ?? ImageFile.info(images[0]).channels
    }

    public func sample(_ index: Int) throws -> Sample {
        let image = try ImageFile.decode(images[index], channels: channels)
        let stored = try ImageFile.decodeMask(masks[index])
        guard stored.width == image.width, stored.height == image.height else {
            throw DataError("\(masks[index]) is \(stored.width)x\(stored.height) but its image \(images[index]) is \(image.width)x\(image.height); a mask must have its image's size.")
        }
        return Sample(image: image, target: .mask(try labelMap.apply(to: stored, classes: classNames.count, source: masks[index])))
    }

    public func imageSize(_ index: Int) throws -> (height: Int, width: Int) {
        let info = try ImageFile.info(images[index])
        return (info.height, info.width)
    }

    /// The mask of each image: `mask(image)` names it; a missing one is refused with both names.
    static func masks(of images: [String], _ mask: (String) -> String) throws -> [String] {
        try images.map { image in
            let path = mask(image)
            guard FileManager.default.fileExists(atPath: path) else { throw DataError("\(image) has no mask \(path).") }
            return path
        }
    }
}

import Foundation

/// A semantic segmentation set: ROOT/SPLIT/images/NAME.png|.jpg with ROOT/SPLIT/masks/NAME.png
/// (8-bit gray, value = class id, 255 = ignore), SPLIT train and test (or val), and optionally
/// ROOT/classes.txt (one class name per line, in id order). Images may differ in size; each
/// image's mask has its size.
public struct SegmentationFolder: Dataset {
    public let classNames: [String]
    public let channels: Int
    public var task: TaskKind { .segmentation }
    public var count: Int { images.count }
    /// Image paths and the paths of their masks.
    public let images: [String]
    public let masks: [String]

    /// Lists a split. Class names come from `classNames` when given, else from classes.txt,
    /// else from the largest id in the split's masks (read once, in parallel: 0, 1, ...).
    /// `channels` nil takes the first image's. `limit` > 0 keeps the first `limit` images.
    public init(root: String, split: String, classNames: [String]? = nil, channels: Int? = nil, limit: Int = 0) throws {
        let directory = try FolderLayout.splitDirectory(root: root, split: split)
        let imageDirectory = (directory as NSString).appendingPathComponent("images")
        let maskDirectory = (directory as NSString).appendingPathComponent("masks")
        let imageFiles = FolderLayout.limited(try FolderLayout.imageFiles(in: imageDirectory), limit)
        guard !imageFiles.isEmpty else { throw DataError("\(imageDirectory) holds no .png or .jpg image.") }
        var masks: [String] = []
        for image in imageFiles {
            let stem = ((image as NSString).lastPathComponent as NSString).deletingPathExtension
            let mask = (maskDirectory as NSString).appendingPathComponent(stem + ".png")
            guard FileManager.default.fileExists(atPath: mask) else {
                throw DataError("\(image) has no mask \(mask); every image needs a mask of the same name (an 8-bit gray PNG).")
            }
            masks.append(mask)
        }
        images = imageFiles
        self.masks = masks
        self.channels = try channels ?? ImageFile.info(imageFiles[0]).channels
        if let classNames {
            self.classNames = classNames
        } else if let listed = try Self.classesFile(root: root) {
            self.classNames = listed
        } else {
            let largest = try Self.largestClassID(masks)
            self.classNames = (0...max(1, largest)).map(String.init)
        }
        guard self.classNames.count >= 2, self.classNames.count <= 255 else {
            throw DataError("a segmentation set needs 2 to 255 classes (255 marks ignored pixels); \(root) has \(self.classNames.count).")
        }
    }

    public func sample(_ index: Int) throws -> Sample {
        let image = try ImageFile.decode(images[index], channels: channels)
        let mask = try ImageFile.decodeMask(masks[index])
        guard mask.width == image.width, mask.height == image.height else {
            throw DataError("\(masks[index]) is \(mask.width)x\(mask.height) but its image \(images[index]) is \(image.width)x\(image.height); a mask must have its image's size.")
        }
        if let bad = mask.pixels.first(where: { Int($0) >= classNames.count && $0 != ignoreLabel }) {
            throw DataError("\(masks[index]) holds class id \(bad), but the data set has \(classNames.count) classes (0...\(classNames.count - 1), 255 = ignore); fix the mask or the class list (classes.txt or model.classes).")
        }
        return Sample(image: image, target: .mask(mask))
    }

    /// The names in ROOT/classes.txt (blank lines at the end dropped), or nil without the file.
    public static func classesFile(root: String) throws -> [String]? {
        let path = (root as NSString).appendingPathComponent("classes.txt")
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DataError("cannot read \(path) as UTF-8 text (one class name per line).")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        while lines.last == "" { lines.removeLast() }
        return lines
    }

    /// The largest class id (255 excluded) over `masks`.
    static func largestClassID(_ masks: [String]) throws -> Int {
        var largest = [Int](repeating: 0, count: masks.count)
        var failure: [DataError?] = Array(repeating: nil, count: masks.count)
        largest.withUnsafeMutableBufferPointer { out in
            failure.withUnsafeMutableBufferPointer { errors in
                nonisolated(unsafe) let out = out, errors = errors
                DispatchQueue.concurrentPerform(iterations: masks.count) { i in
                    do {
                        out[i] = Int(try ImageFile.decodeMask(masks[i]).pixels.lazy.filter { $0 != ignoreLabel }.max() ?? 0)
                    } catch {
                        errors[i] = error as? DataError ?? DataError("\(masks[i]): \(error)")
                    }
                }
            }
        }
        if let error = failure.compactMap({ $0 }).first { throw error }
        return largest.max() ?? 0
    }
}

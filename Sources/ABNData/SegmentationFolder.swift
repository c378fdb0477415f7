import Foundation

/// The layout of a plain segmentation set: ROOT/SPLIT/images/NAME.png|.jpg with
/// ROOT/SPLIT/masks/NAME.png (8-bit gray or palette, value = class id, 255 = ignore), SPLIT train
/// and test (or val), and optionally ROOT/classes.txt (one class name per line, in id order).
/// Images may differ in size; each image's mask has its size.
public enum SegmentationFolder {
    /// Opens a split. Class names come from `classNames` when given, else from classes.txt,
    /// else from the largest id in the split's masks after `labelMap` (read once, in parallel:
    /// 0, 1, ...). `channels` nil takes the first image's. `limit` > 0 keeps the first `limit` images.
    public static func open(root: String, split: String, classNames: [String]? = nil, labelMap: LabelMap = .identity,
                            channels: Int? = nil, limit: Int = 0) throws -> LabeledSegmentationSet {
        let directory = try FolderLayout.splitDirectory(root: root, split: split)
        let imageDirectory = (directory as NSString).appendingPathComponent("images")
        let maskDirectory = (directory as NSString).appendingPathComponent("masks")
        let imageFiles = FolderLayout.limited(try FolderLayout.imageFiles(in: imageDirectory), limit)
        guard !imageFiles.isEmpty else { throw DataError("\(imageDirectory) holds no .png or .jpg image.") }
        let masks = try LabeledSegmentationSet.masks(of: imageFiles) { image in
            let stem = ((image as NSString).lastPathComponent as NSString).deletingPathExtension
            return (maskDirectory as NSString).appendingPathComponent(stem + ".png")
        }
        let names = try classNames ?? Self.classesFile(root: root) ?? (0...max(1, try largestClassID(masks, labelMap))).map(String.init)
        return try LabeledSegmentationSet(images: imageFiles, masks: masks, classNames: names, labelMap: labelMap, channels: channels,
                                          source: directory)
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

    /// The largest class id (255 excluded) over `masks`, after `labelMap`.
    static func largestClassID(_ masks: [String], _ labelMap: LabelMap) throws -> Int {
        var largest = [Int](repeating: 0, count: masks.count)
        var failure: [DataError?] = Array(repeating: nil, count: masks.count)
        largest.withUnsafeMutableBufferPointer { out in
            failure.withUnsafeMutableBufferPointer { errors in
                nonisolated(unsafe) let out = out, errors = errors
                DispatchQueue.concurrentPerform(iterations: masks.count) { i in
                    do {
                        let mask = try labelMap.apply(to: ImageFile.decodeMask(masks[i]), classes: 255, source: masks[i])
                        out[i] = Int(mask.pixels.lazy.filter { $0 != ignoreLabel }.max() ?? 0)
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

import Foundation

/// Helpers for the folder data sets: split folders and the image files in a folder.
enum FolderLayout {
    /// ROOT/SPLIT; for the split named test, ROOT/test or else ROOT/val.
    static func splitDirectory(root: String, split: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError("the data folder \(root) does not exist; set data.root to a folder with train/ and test/ (or val/) in it.")
        }
        let candidates = split == "test" ? ["test", "val"] : [split]
        for name in candidates {
            let path = (root as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return path }
        }
        throw DataError("\(root) has no \(candidates.joined(separator: "/ or ")) folder; the layout is ROOT/train/... and ROOT/test/... (see docs/data-sets.md).")
    }

    /// The PNG and JPEG files directly in `directory`, sorted by name (hidden files skipped).
    static func imageFiles(in directory: String) throws -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw DataError("cannot list \(directory); check that it exists and is readable.")
        }
        return names.filter { !$0.hasPrefix(".") && ImageFile.extensions.contains(($0 as NSString).pathExtension.lowercased()) }
            .sorted()
            .map { (directory as NSString).appendingPathComponent($0) }
    }

    /// The files under `directory` (in sub-folders too) whose names end with `suffix`, sorted by
    /// path (hidden files and folders skipped).
    static func files(under directory: String, endingWith suffix: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue,
              let walker = FileManager.default.enumerator(atPath: directory) else {
            throw DataError("cannot list \(directory); check that it exists and is readable.")
        }
        var found: [String] = []
        while let relative = walker.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            if name.hasPrefix(".") {
                walker.skipDescendants()
            } else if name.hasSuffix(suffix) {
                found.append((directory as NSString).appendingPathComponent(relative))
            }
        }
        return found.sorted()
    }

    /// Sub-folders of `directory`, sorted by name (hidden ones skipped).
    static func subdirectories(of directory: String) throws -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            throw DataError("cannot list \(directory); check that it exists and is readable.")
        }
        return names.filter { name in
            var isDirectory: ObjCBool = false
            let path = (directory as NSString).appendingPathComponent(name)
            return !name.hasPrefix(".") && FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
        }.sorted()
    }

    /// Keeps the first `limit` items (all when `limit` is 0).
    static func limited<T>(_ items: [T], _ limit: Int) -> [T] { limit > 0 ? Array(items.prefix(limit)) : items }
}

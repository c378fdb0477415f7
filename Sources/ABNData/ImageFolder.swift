import Foundation

/// An image classification set in PyTorch's ImageFolder layout: ROOT/train/CLASS/NAME.png|.jpg
/// and ROOT/test/CLASS/... (or val/); classes are the training split's folder names, sorted.
/// Images are decoded when asked for, to `channels` channels, at their own size.
public struct ImageFolder: Dataset {
    public let classNames: [String]
    public let channels: Int
    public var task: TaskKind { .classification }
    public var count: Int { files.count }
    /// Image paths and their class ids, in class order, then name order.
    public let files: [String]

    public func imageSize(_ index: Int) throws -> (height: Int, width: Int) {
        let info = try ImageFile.info(files[index])
        return (info.height, info.width)
    }
    public let labels: [Int]

    /// Lists a split. `classNames` (the training split's, for the test split) fixes the class
    /// ids; nil takes this split's folders. `channels` nil takes the first image's. `limit` > 0
    /// keeps a deterministic subset: files are interleaved across classes before the cut, so
    /// a limited set still holds every class.
    public init(root: String, split: String, classNames: [String]? = nil, channels: Int? = nil, limit: Int = 0) throws {
        let directory = try FolderLayout.splitDirectory(root: root, split: split)
        let folders = try FolderLayout.subdirectories(of: directory)
        let names = classNames ?? folders
        guard names.count >= 2 else {
            throw DataError("\(directory) holds \(names.count) class folder(s); an image-folder set needs at least 2 (ROOT/train/CLASS/NAME.png).")
        }
        let perClass = try names.map { name in
            folders.contains(name) ? try FolderLayout.imageFiles(in: (directory as NSString).appendingPathComponent(name)) : []
        }
        if let stranger = folders.first(where: { !names.contains($0) }) {
            throw DataError("\(directory)/\(stranger) is a class the training split does not have (its classes: \(names.joined(separator: ", "))); rename or remove it.")
        }
        // round-robin over classes, so that a limit keeps every class
        var files: [String] = [], labels: [Int] = []
        var position = 0
        while perClass.contains(where: { position < $0.count }) {
            for (id, list) in perClass.enumerated() where position < list.count {
                files.append(list[position]); labels.append(id)
            }
            position += 1
        }
        guard !files.isEmpty else { throw DataError("\(directory) holds no .png or .jpg image in its class folders.") }
        self.files = FolderLayout.limited(files, limit)
        self.labels = FolderLayout.limited(labels, limit)
        self.classNames = names
        self.channels = try channels ?? ImageFile.info(files[0]).channels
    }

    public func sample(_ index: Int) throws -> Sample {
        Sample(image: try ImageFile.decode(files[index], channels: channels), target: .label(labels[index]))
    }
}

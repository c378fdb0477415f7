import ABNData
import Foundation

/// The images `abn predict` reads and the files it writes for them. An IMAGE argument is one
/// file, named by its file name; a DIR argument stands for every PNG and JPEG file under it (in
/// sub-folders too, hidden ones skipped), named by its path below DIR. Files are taken in the
/// order of the arguments, each folder's sorted by path. A name drops the extension: the mask
/// of `DIR/city/frame.jpg` is `OUT/city/frame.png`, its overlay `OUT/city/frame_overlay.png`.
public struct PredictionInputs: Sendable {
    public struct File: Codable, Equatable, Sendable {
        /// The image's path, as given or found.
        public var image: String
        /// The mask's path below the output folder ("city/frame.png").
        public var mask: String
        /// The overlay's path below the output folder, when overlays are written.
        public var overlay: String?
    }

    public let files: [File]

    /// Lists `arguments`, leaving out files inside `output` (earlier predictions), with overlays
    /// when `overlays`. An argument that does not exist, is not an image or holds none, and two
    /// images that would write the same file, are refused with their names.
    public init(_ arguments: [String], output: String, overlays: Bool) throws {
        let outputFolder = Self.absolute(output) + "/"
        var files: [File] = []
        var writers: [String: String] = [:]  // output path -> the image that writes it
        for argument in arguments {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                throw TrainingError("\(argument) does not exist; give image files (PNG or JPEG) or folders of them.")
            }
            let found: [(image: String, name: String)]
            if isDirectory.boolValue {
                found = try Self.images(under: argument).filter { !Self.absolute($0.image).hasPrefix(outputFolder) }
                guard !found.isEmpty else { throw TrainingError("\(argument) holds no PNG or JPEG file (outside the output folder \(output)).") }
            } else {
                let name = (argument as NSString).lastPathComponent
                guard ImageFile.extensions.contains((name as NSString).pathExtension.lowercased()) else {
                    throw TrainingError("\(argument) is not a PNG or JPEG file (.png, .jpg or .jpeg).")
                }
                found = [(argument, (name as NSString).deletingPathExtension)]
            }
            for (image, name) in found {
                let file = File(image: image, mask: name + ".png", overlay: overlays ? name + "_overlay.png" : nil)
                for path in [file.mask] + (file.overlay.map { [$0] } ?? []) {
                    if let other = writers[path] {
                        throw TrainingError("\(other) and \(image) would both write \(path) in \(output); predict them in separate runs or rename one.")
                    }
                    writers[path] = image
                }
                files.append(file)
            }
        }
        self.files = files
    }

    /// The PNG and JPEG files under `directory` (hidden files and folders skipped), sorted by
    /// path, with their paths below it less the extension.
    private static func images(under directory: String) throws -> [(image: String, name: String)] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else {
            throw TrainingError("cannot list \(directory); check that it is readable.")
        }
        var found: [(image: String, name: String)] = []
        while let relative = walker.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            if name.hasPrefix(".") {
                walker.skipDescendants()
            } else if walker.fileAttributes?[.type] as? FileAttributeType != .typeDirectory,
                      ImageFile.extensions.contains((name as NSString).pathExtension.lowercased()) {
                found.append(((directory as NSString).appendingPathComponent(relative), (relative as NSString).deletingPathExtension))
            }
        }
        return found.sorted { $0.image < $1.image }
    }

    /// `path` made absolute and standardized (no `.`, `..` or trailing slash).
    private static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }
}

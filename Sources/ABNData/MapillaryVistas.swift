import Foundation

/// The Mapillary Vistas layout: ROOT/SPLIT/images/NAME.jpg with ROOT/SPLIT/v1.2/labels/NAME.png
/// (the v2.0 release) or ROOT/SPLIT/labels/NAME.png (the v1 releases), SPLIT training or
/// validation. A mask stores label ids: the position of each label in the release's label table,
/// ROOT/config_v1.2.json (or ROOT/config.json). The labels the table marks `"evaluate": false`
/// are ignored and the others are the classes, in table order: 65 classes in v1.2, whose
/// "Unlabeled" is ignored, as the InPlace-ABN paper trains on it.
public enum MapillaryVistas {
    /// A release's label table: each label's readable name and color, and whether it is evaluated.
    public struct LabelTable: Sendable {
        public let names: [String]
        public let colors: [(UInt8, UInt8, UInt8)]
        public let evaluated: [Bool]

        /// The evaluated labels' names: the classes.
        public var classNames: [String] { names.indices.filter { evaluated[$0] }.map { names[$0] } }

        /// Label id -> class (the evaluated labels in order), 255 for the others.
        public var labelMap: LabelMap {
            var next = 0
            return LabelMap(pairs: names.indices.map { id in
                guard evaluated[id] else { return (id: id, label: 255) }
                defer { next += 1 }
                return (id: id, label: next)
            })
        }

        /// The classes in the table's colors.
        public var palette: MaskPalette { MaskPalette(classColors: colors.indices.filter { evaluated[$0] }.map { colors[$0] }) }
    }

    /// The label file of the v1.2 labels and the folder of a split's masks below it, for the
    /// release at `root`: v2.0's (config_v1.2.json, SPLIT/v1.2/labels) or v1's (config.json,
    /// SPLIT/labels).
    static func release(root: String) -> (table: String, labels: String) {
        let v2 = (root as NSString).appendingPathComponent("config_v1.2.json")
        return FileManager.default.fileExists(atPath: v2) ? (v2, "v1.2/labels") : ((root as NSString).appendingPathComponent("config.json"), "labels")
    }

    /// The label table of the release at `root`.
    public static func labelTable(root: String) throws -> LabelTable {
        struct File: Decodable {
            struct Label: Decodable {
                let name: String
                let readable: String?
                let color: [Int]
                let evaluate: Bool?
            }
            let labels: [Label]
        }
        let path = release(root: root).table
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw DataError("cannot read the label table \(path) (\(error.localizedDescription)); set data.root to the Mapillary Vistas folder holding it.")
        }
        guard (2...255).contains(file.labels.count), file.labels.allSatisfy({ $0.color.count == 3 && $0.color.allSatisfy { (0...255).contains($0) } }) else {
            throw DataError("\(path) lists \(file.labels.count) labels; a Mapillary Vistas table lists 2 to 255, each with an RGB color.")
        }
        return LabelTable(names: file.labels.map { $0.readable ?? $0.name }, colors: file.labels.map { (UInt8($0.color[0]), UInt8($0.color[1]), UInt8($0.color[2])) },
                          evaluated: file.labels.map { $0.evaluate ?? true })
    }

    /// Opens split `split` (training, validation); `labelMap` replaces the table's.
    public static func open(root: String, split: String, labelMap: LabelMap? = nil, channels: Int? = nil, limit: Int = 0) throws -> LabeledSegmentationSet {
        let table = try labelTable(root: root)
        let splitDirectory = (root as NSString).appendingPathComponent(split)
        let imageDirectory = (splitDirectory as NSString).appendingPathComponent("images")
        let images = try FolderLayout.files(under: imageDirectory, endingWith: ".jpg")
        guard !images.isEmpty else { throw DataError("\(imageDirectory) holds no .jpg image; set data.root to the Mapillary Vistas folder with training/ and validation/.") }
        let labels = (splitDirectory as NSString).appendingPathComponent(release(root: root).labels)
        let masks = try LabeledSegmentationSet.masks(of: images) { image in
            labels + String(image.dropFirst(imageDirectory.count).dropLast(".jpg".count)) + ".png"
        }
        return try LabeledSegmentationSet(images: images, masks: masks, classNames: table.classNames, labelMap: labelMap ?? table.labelMap,
                                          channels: channels, limit: limit, source: imageDirectory)
    }
}

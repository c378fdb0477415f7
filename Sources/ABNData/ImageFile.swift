import Foundation

/// Image files on disk: PNG or JPEG, told apart by their first bytes (not their names).
public enum ImageFile {
    /// File names the folder data sets take as images.
    public static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    /// The bytes of `path`, with a message that names it when it cannot be read.
    public static func bytes(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DataError("cannot read \(path); check that it exists and is readable.")
        }
        return [UInt8](data)
    }

    /// Decodes a PNG or JPEG file to gray (1) or RGB (3) channels (default: the file's own).
    public static func decode(_ path: String, channels: Int? = nil) throws -> Image8 {
        let data = try bytes(path)
        switch kind(data) {
        case .png: return try PNGCodec.decode(data, channels: channels, source: path)
        case .jpeg: return try JPEGCodec.decode(data, channels: channels, source: path)
        case nil: throw DataError("\(path) is neither a PNG nor a JPEG file; convert or remove it.")
        }
    }

    /// Width, height and channels from the file's header, without decoding the pixels.
    public static func info(_ path: String) throws -> (width: Int, height: Int, channels: Int) {
        let data = try bytes(path)
        switch kind(data) {
        case .png: let i = try PNGCodec.info(data, source: path); return (i.width, i.height, i.channels)
        case .jpeg: return try JPEGCodec.info(data, source: path)
        case nil: throw DataError("\(path) is neither a PNG nor a JPEG file; convert or remove it.")
        }
    }

    /// Decodes a segmentation mask: an 8-bit gray PNG whose values are the ids, or a palette PNG
    /// whose indices are (as Pascal VOC's); 255 is "ignore" unless a label map says otherwise.
    public static func decodeMask(_ path: String) throws -> Image8 {
        let data = try bytes(path)
        guard kind(data) == .png else {
            throw DataError("\(path) is not a PNG; masks must be 8-bit grayscale or palette PNGs (a lossy JPEG would change class ids).")
        }
        switch try PNGCodec.info(data, source: path).kind {
        case .plainGray: return try PNGCodec.decode(data, channels: 1, source: path)
        case .palette: return try PNGCodec.decodeIndices(data, source: path)
        case .other:
            throw DataError("\(path) is neither an 8-bit grayscale nor a palette PNG (it has color, alpha or 16-bit samples); save masks as 8-bit gray or palette images, value = class id, 255 = ignore.")
        }
    }

    enum Kind { case png, jpeg }

    static func kind(_ data: [UInt8]) -> Kind? {
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if data.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        return nil
    }
}

import CPNG
import Foundation

/// PNG decoding and encoding through libpng's simplified API (png_image): 8-bit gray or RGB,
/// and the indices of palette images (segmentation masks such as Pascal VOC's).
public enum PNGCodec {
    /// Largest accepted width x height: a header may claim anything, and is checked before
    /// anything of that size is allocated.
    public static let maximumPixels = 1 << 28

    /// What a file's samples are, as far as a mask is concerned.
    public enum SampleKind: Sendable {
        /// 8-bit gray without alpha: the values are the ids.
        case plainGray
        /// Indices into a palette: the indices are the ids.
        case palette
        /// Anything else (color, alpha, 16-bit samples).
        case other
    }

    /// Width, height and channels (1 for gray, 3 for color) from the header of `data`, and what
    /// its samples are.
    public static func info(_ data: [UInt8], source: String) throws -> (width: Int, height: Int, channels: Int, kind: SampleKind) {
        let image = try begin(data, source: source)
        defer { release(image) }
        let format = image.pointee.format
        let color = format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0
        let kind: SampleKind = format == UInt32(PNG_FORMAT_GRAY) ? .plainGray  // no color, alpha, palette or 16 bits
            : format & UInt32(PNG_FORMAT_FLAG_COLORMAP) != 0 ? .palette : .other
        return (Int(image.pointee.width), Int(image.pointee.height), color ? 3 : 1, kind)
    }

    /// The palette indices of a palette image (1 channel, one index per pixel), as stored.
    public static func decodeIndices(_ data: [UInt8], source: String) throws -> Image8 {
        let image = try begin(data, source: source)
        defer { release(image) }
        guard image.pointee.format & UInt32(PNG_FORMAT_FLAG_COLORMAP) != 0 else {
            throw DataError("\(source) is not a palette PNG.")
        }
        // read color-mapped: libpng keeps a palette file's own indices
        image.pointee.format = UInt32(PNG_FORMAT_RGB) | UInt32(PNG_FORMAT_FLAG_COLORMAP)
        let width = Int(image.pointee.width), height = Int(image.pointee.height)
        var indices = [UInt8](repeating: 0, count: width * height)
        var colormap = [UInt8](repeating: 0, count: 3 * 256)
        let ok = indices.withUnsafeMutableBytes { buffer in
            colormap.withUnsafeMutableBytes { png_image_finish_read(image, nil, buffer.baseAddress, 0, $0.baseAddress) }
        }
        guard ok != 0 else { throw DataError("\(source) is not a readable PNG: \(message(image)); replace or remove the file.") }
        return Image8(width: width, height: height, channels: 1, pixels: indices)
    }

    /// Decodes `data` to 8-bit gray (1 channel) or RGB (3 channels; the default is the file's
    /// own: gray stays gray, color and palette become RGB). Alpha is composited over black.
    public static func decode(_ data: [UInt8], channels wanted: Int? = nil, source: String) throws -> Image8 {
        let image = try begin(data, source: source)
        defer { release(image) }
        let channels = wanted ?? (image.pointee.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0 ? 3 : 1)
        image.pointee.format = channels == 3 ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
        let width = Int(image.pointee.width), height = Int(image.pointee.height)
        var pixels = [UInt8](repeating: 0, count: width * height * channels)  // black under alpha
        let ok = pixels.withUnsafeMutableBytes { png_image_finish_read(image, nil, $0.baseAddress, 0, nil) }
        guard ok != 0 else { throw DataError("\(source) is not a readable PNG: \(message(image)); replace or remove the file.") }
        return Image8(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// PNG bytes of `image` (8-bit gray or RGB; deterministic: the same image gives the same bytes).
    public static func encode(_ image: Image8) throws -> [UInt8] {
        let png = blank()
        defer { release(png) }
        png.pointee.width = UInt32(image.width)
        png.pointee.height = UInt32(image.height)
        png.pointee.format = image.channels == 3 ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
        var size = 0
        let probe = image.pixels.withUnsafeBytes { png_image_write_to_memory(png, nil, &size, 0, $0.baseAddress, 0, nil) }
        guard probe != 0 else { throw DataError("cannot encode a PNG: \(message(png)).") }
        var out = [UInt8](repeating: 0, count: size)
        let ok = out.withUnsafeMutableBytes { buffer in
            image.pixels.withUnsafeBytes { png_image_write_to_memory(png, buffer.baseAddress, &size, 0, $0.baseAddress, 0, nil) }
        }
        guard ok != 0 else { throw DataError("cannot encode a PNG: \(message(png)).") }
        return Array(out.prefix(size))
    }

    /// PNG bytes of a palette image: `indices` (1 channel) index `palette` (RGB, at most 256
    /// entries; every index must have one). Masks written this way read back as their ids.
    public static func encode(indices: Image8, palette: [(UInt8, UInt8, UInt8)]) throws -> [UInt8] {
        precondition(indices.channels == 1 && (1...256).contains(palette.count), "a palette image is 1 channel of indices into 1 to 256 colors")
        precondition(indices.pixels.allSatisfy { Int($0) < palette.count }, "every index needs a palette entry")
        let png = blank()
        defer { release(png) }
        png.pointee.width = UInt32(indices.width)
        png.pointee.height = UInt32(indices.height)
        png.pointee.format = UInt32(PNG_FORMAT_RGB) | UInt32(PNG_FORMAT_FLAG_COLORMAP)
        png.pointee.colormap_entries = UInt32(palette.count)
        let colormap = palette.flatMap { [$0.0, $0.1, $0.2] }
        var size = 0
        let probe = indices.pixels.withUnsafeBytes { pixels in
            colormap.withUnsafeBytes { png_image_write_to_memory(png, nil, &size, 0, pixels.baseAddress, 0, $0.baseAddress) }
        }
        guard probe != 0 else { throw DataError("cannot encode a PNG: \(message(png)).") }
        var out = [UInt8](repeating: 0, count: size)
        let ok = out.withUnsafeMutableBytes { buffer in
            indices.pixels.withUnsafeBytes { pixels in
                colormap.withUnsafeBytes { png_image_write_to_memory(png, buffer.baseAddress, &size, 0, pixels.baseAddress, 0, $0.baseAddress) }
            }
        }
        guard ok != 0 else { throw DataError("cannot encode a PNG: \(message(png)).") }
        return Array(out.prefix(size))
    }

    /// A zeroed png_image of this libpng's version (release it with `release`).
    private static func blank() -> UnsafeMutablePointer<png_image> {
        let image = UnsafeMutablePointer<png_image>.allocate(capacity: 1)
        UnsafeMutableRawPointer(image).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<png_image>.size)
        image.pointee.version = UInt32(PNG_IMAGE_VERSION)
        return image
    }

    private static func release(_ image: UnsafeMutablePointer<png_image>) {
        png_image_free(image)
        image.deallocate()
    }

    /// Reads the header of `data` into a new png_image, checking its size.
    private static func begin(_ data: [UInt8], source: String) throws -> UnsafeMutablePointer<png_image> {
        let image = blank()
        let ok = data.withUnsafeBytes { png_image_begin_read_from_memory(image, $0.baseAddress, $0.count) }
        guard ok != 0 else {
            defer { release(image) }
            throw DataError("\(source) is not a readable PNG: \(message(image)); replace or remove the file.")
        }
        let width = image.pointee.width, height = image.pointee.height
        let pixels = Int(width).multipliedReportingOverflow(by: Int(height))
        guard width > 0, height > 0 else {
            release(image)
            throw DataError("\(source) is not a readable PNG: its header gives no size; replace or remove the file.")
        }
        guard !pixels.overflow, pixels.partialValue <= maximumPixels else {
            release(image)
            throw DataError("\(source) claims \(width)x\(height) pixels, more than the \(maximumPixels) accepted; replace or remove the file.")
        }
        return image
    }

    private static func message(_ image: UnsafeMutablePointer<png_image>) -> String {
        withUnsafeBytes(of: image.pointee.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
}

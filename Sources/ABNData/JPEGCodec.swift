import CTurboJPEG

/// JPEG decoding and encoding through libjpeg-turbo's TurboJPEG API: 8-bit gray or RGB.
public enum JPEGCodec {
    /// Width, height and channels (1 for a grayscale JPEG, else 3) from the header of `data`.
    public static func info(_ data: [UInt8], source: String) throws -> (width: Int, height: Int, channels: Int) {
        guard let handle = tjInitDecompress() else { throw DataError("cannot start the JPEG decoder (TurboJPEG).") }
        defer { tjDestroy(handle) }
        return try header(handle, data, source: source)
    }

    /// Decodes `data` to gray (1 channel) or RGB (3; the default is the file's own).
    public static func decode(_ data: [UInt8], channels wanted: Int? = nil, source: String) throws -> Image8 {
        guard let handle = tjInitDecompress() else { throw DataError("cannot start the JPEG decoder (TurboJPEG).") }
        defer { tjDestroy(handle) }
        let (width, height, own) = try header(handle, data, source: source)
        let channels = wanted ?? own
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        let format = channels == 3 ? TJPF_RGB : TJPF_GRAY
        let status = pixels.withUnsafeMutableBufferPointer { out in
            data.withUnsafeBufferPointer {
                tjDecompress2(handle, $0.baseAddress, UInt(data.count), out.baseAddress, Int32(width), 0, Int32(height),
                              Int32(format.rawValue), TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING)
            }
        }
        guard status == 0 else {
            throw DataError("\(source) is not a readable JPEG: \(errorText(handle)); replace or remove the file.")
        }
        return Image8(width: width, height: height, channels: channels, pixels: pixels)
    }

    /// JPEG bytes of `image` at `quality` (1...100), 4:4:4.
    public static func encode(_ image: Image8, quality: Int = 95) throws -> [UInt8] {
        guard let handle = tjInitCompress() else { throw DataError("cannot start the JPEG encoder (TurboJPEG).") }
        defer { tjDestroy(handle) }
        var buffer: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let format = image.channels == 3 ? TJPF_RGB : TJPF_GRAY
        let status = image.pixels.withUnsafeBufferPointer {
            tjCompress2(handle, $0.baseAddress, Int32(image.width), 0, Int32(image.height), Int32(format.rawValue), &buffer, &size,
                        Int32(image.channels == 3 ? TJSAMP_444.rawValue : TJSAMP_GRAY.rawValue), Int32(quality), TJFLAG_ACCURATEDCT)
        }
        defer { tjFree(buffer) }
        guard status == 0, let buffer else { throw DataError("cannot encode a JPEG: \(errorText(handle)).") }
        return Array(UnsafeBufferPointer(start: buffer, count: Int(size)))
    }

    private static func header(_ handle: tjhandle, _ data: [UInt8], source: String) throws -> (Int, Int, Int) {
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let status = data.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt(data.count), &width, &height, &subsampling, &colorspace)
        }
        guard status == 0 else { throw DataError("\(source) is not a readable JPEG: \(errorText(handle)); replace or remove the file.") }
        guard width > 0, height > 0 else { throw DataError("\(source) is not a readable JPEG: its header gives no size; replace or remove the file.") }
        let pixels = Int(width).multipliedReportingOverflow(by: Int(height))
        guard !pixels.overflow, pixels.partialValue <= PNGCodec.maximumPixels else {
            throw DataError("\(source) claims \(width)x\(height) pixels, more than the \(PNGCodec.maximumPixels) accepted; replace or remove the file.")
        }
        return (Int(width), Int(height), colorspace == Int32(TJCS_GRAY.rawValue) ? 1 : 3)
    }

    private static func errorText(_ handle: tjhandle) -> String { String(cString: tjGetErrorStr2(handle)) }
}

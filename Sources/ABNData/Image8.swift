/// An 8-bit image as decoded: pixels (height, width, channels) interleaved, row-major;
/// 1 channel (gray) or 3 (RGB).
public struct Image8: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let channels: Int
    /// (height, width, channels) bytes.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0 && (channels == 1 || channels == 3), "an image is 1 or 3 channels of non-negative size")
        precondition(pixels.count == width * height * channels, "\(pixels.count) bytes for a \(width)x\(height)x\(channels) image")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// The same image with `count` channels: gray is repeated into RGB; RGB becomes gray by
    /// the ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, rounded).
    public func converted(toChannels count: Int) -> Image8 {
        if count == channels { return self }
        let n = width * height
        if count == 3 {
            var out = [UInt8](repeating: 0, count: 3 * n)
            for i in 0..<n { let v = pixels[i]; out[3 * i] = v; out[3 * i + 1] = v; out[3 * i + 2] = v }
            return Image8(width: width, height: height, channels: 3, pixels: out)
        }
        var out = [UInt8](repeating: 0, count: n)
        for i in 0..<n {
            let luma = 299 * Int(pixels[3 * i]) + 587 * Int(pixels[3 * i + 1]) + 114 * Int(pixels[3 * i + 2])
            out[i] = UInt8((luma + 500) / 1000)
        }
        return Image8(width: width, height: height, channels: 1, pixels: out)
    }
}

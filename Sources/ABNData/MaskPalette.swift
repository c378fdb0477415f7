/// A fixed palette for class masks (the PASCAL VOC construction: the bits of the class id
/// spread over the high bits of R, G and B), with white for ignored pixels.
public enum MaskPalette {
    /// The RGB color of class `id` (255: white).
    public static func color(_ id: UInt8) -> (UInt8, UInt8, UInt8) {
        if id == ignoreLabel { return (255, 255, 255) }
        var r = 0, g = 0, b = 0, c = Int(id)
        for shift in stride(from: 7, through: 0, by: -1) {
            r |= (c & 1) << shift; g |= ((c >> 1) & 1) << shift; b |= ((c >> 2) & 1) << shift
            c >>= 3
        }
        return (UInt8(r), UInt8(g), UInt8(b))
    }

    /// The colors of all 256 ids, for palette PNGs of masks (`PNGCodec.encode(indices:palette:)`).
    public static let palette = (0...255).map { color(UInt8($0)) }

    /// An RGB picture of `mask` (1 channel of class ids).
    public static func colorize(_ mask: Image8) -> Image8 {
        var pixels = [UInt8](repeating: 0, count: mask.width * mask.height * 3)
        for (i, id) in mask.pixels.enumerated() {
            let (r, g, b) = color(id)
            pixels[3 * i] = r; pixels[3 * i + 1] = g; pixels[3 * i + 2] = b
        }
        return Image8(width: mask.width, height: mask.height, channels: 3, pixels: pixels)
    }

    /// `image` (RGB) with the colors of `mask` (its size, class ids) blended over it: each
    /// channel (1 - alpha) x image + alpha x color, rounded.
    public static func overlay(_ image: Image8, mask: Image8, alpha: Float = 0.5) -> Image8 {
        precondition(image.channels == 3 && mask.channels == 1 && image.width == mask.width && image.height == mask.height,
                     "an overlay needs an RGB image and a mask of its size")
        let colors = colorize(mask).pixels
        let pixels = zip(image.pixels, colors).map { UInt8(((1 - alpha) * Float($0) + alpha * Float($1)).rounded()) }
        return Image8(width: image.width, height: image.height, channels: 3, pixels: pixels)
    }

    /// The images side by side (same height, RGB).
    public static func sideBySide(_ images: [Image8]) -> Image8 {
        let height = images[0].height, width = images.reduce(0) { $0 + $1.width }
        precondition(images.allSatisfy { $0.height == height && $0.channels == 3 }, "side by side needs RGB images of one height")
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        var left = 0
        for image in images {
            for y in 0..<height {
                for x in 0..<image.width * 3 { pixels[(y * width + left) * 3 + x] = image.pixels[y * image.width * 3 + x] }
            }
            left += image.width
        }
        return Image8(width: width, height: height, channels: 3, pixels: pixels)
    }
}

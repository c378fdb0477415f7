/// The colors of class masks, one per id, white for ignored pixels (255). `voc` is the PASCAL
/// VOC construction (the bits of the class id spread over the high bits of R, G and B); a data
/// set may give its classes colors of its own (`Cityscapes.palette`).
public struct MaskPalette: Sendable {
    /// (256) the RGB color of each id, for palette PNGs of masks (`PNGCodec.encode(indices:palette:)`).
    public let colors: [(UInt8, UInt8, UInt8)]

    /// The PASCAL VOC palette.
    public static let voc = MaskPalette(classColors: [])

    /// `classColors` for the first classes, the VOC colors for the other ids, white for 255.
    public init(classColors: [(UInt8, UInt8, UInt8)]) {
        colors = (0...255).map { id in
            id == Int(ignoreLabel) ? (255, 255, 255) : id < classColors.count ? classColors[id] : Self.vocColor(id)
        }
    }

    /// The VOC construction's color of `id`.
    private static func vocColor(_ id: Int) -> (UInt8, UInt8, UInt8) {
        var r = 0, g = 0, b = 0, c = id
        for shift in stride(from: 7, through: 0, by: -1) {
            r |= (c & 1) << shift; g |= ((c >> 1) & 1) << shift; b |= ((c >> 2) & 1) << shift
            c >>= 3
        }
        return (UInt8(r), UInt8(g), UInt8(b))
    }

    /// An RGB picture of `mask` (1 channel of class ids).
    public func colorize(_ mask: Image8) -> Image8 {
        var pixels = [UInt8](repeating: 0, count: mask.width * mask.height * 3)
        for (i, id) in mask.pixels.enumerated() {
            let (r, g, b) = colors[Int(id)]
            pixels[3 * i] = r; pixels[3 * i + 1] = g; pixels[3 * i + 2] = b
        }
        return Image8(width: mask.width, height: mask.height, channels: 3, pixels: pixels)
    }

    /// `image` (RGB) with the colors of `mask` (its size, class ids) blended over it: each
    /// channel (1 - alpha) x image + alpha x color, rounded.
    public func overlay(_ image: Image8, mask: Image8, alpha: Float = 0.5) -> Image8 {
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

import ABNTensor
import Dispatch
import Foundation

/// The bundled synthetic segmentation set: Fashion-MNIST garments composited on a textured
/// canvas, in the spirit of M2NIST. Each scene is a deterministic function of (seed, split,
/// index): a size x size RGB canvas with a smooth random background, 2 to 5 garments of that
/// split each scaled by a random factor in [1, 2] (bilinear), tinted with a random color and
/// alpha-composited in drawing order with its intensity as alpha. A pixel's label is 1 + the
/// class of the topmost garment whose alpha there is above 0.1 when that alpha is above 0.25,
/// 255 (ignore) when it is at most 0.25, and 0 (background) where no garment is above 0.1.
public struct FashionMNISTScenes: Sendable {
    /// Background, then the ten Fashion-MNIST classes.
    public static let classNames = ["background", "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    /// Channels of a scene's image (RGB).
    public static let channels = 3
    /// Canvas side in pixels.
    public let size: Int
    public let seed: UInt64

    public init(size: Int = 96, seed: UInt64 = 0) {
        precondition(size >= 56, "the canvas must hold a garment scaled by 2 (56 pixels)")
        self.size = size
        self.seed = seed
    }

    /// Scene `index` of `split`, its garments drawn from `garments` (the same split of Fashion-MNIST).
    public func scene(_ index: Int, split: FashionMNIST.Split, garments: FashionMNIST) -> (image: Image8, mask: Image8) {
        var rng = SplitMix64(seed: mixSeed(seed, split == .train ? 1 : 2, UInt64(index)))
        let S = size
        var canvas = background(&rng)  // (S, S, 3), 0...255
        var topAlpha = [Float](repeating: 0, count: S * S)
        var topClass = [UInt8](repeating: 0, count: S * S)
        let count = 2 + Int(rng.next() % 4)
        for _ in 0..<count {
            let source = Int(rng.next() % UInt64(garments.count))
            let factor = 1 + rng.nextUniform()
            let side = Int((28 * factor).rounded())
            let y0 = Int(rng.next() % UInt64(S - side + 1)), x0 = Int(rng.next() % UInt64(S - side + 1))
            let tint = (0..<3).map { _ in Float(rng.next() % 256) }
            let label = garments.labels[source]
            let plane = garments.height * garments.width
            let glyph = garments.pixels[source * plane..<(source + 1) * plane].map { Float($0) / 255 }
            for y in 0..<side {
                let (r0, r1, wy) = Self.tap(y, ratio: 28 / Float(side), limit: garments.height)
                for x in 0..<side {
                    let (c0, c1, wx) = Self.tap(x, ratio: 28 / Float(side), limit: garments.width)
                    let top = glyph[r0 * garments.width + c0] * (1 - wx) + glyph[r0 * garments.width + c1] * wx
                    let bottom = glyph[r1 * garments.width + c0] * (1 - wx) + glyph[r1 * garments.width + c1] * wx
                    let alpha = top * (1 - wy) + bottom * wy
                    let p = (y0 + y) * S + x0 + x
                    for c in 0..<3 { canvas[3 * p + c] = alpha * tint[c] + (1 - alpha) * canvas[3 * p + c] }
                    if alpha > 0.1 { topAlpha[p] = alpha; topClass[p] = label }
                }
            }
        }
        let pixels = canvas.map { UInt8(max(0, min(255, $0.rounded()))) }
        let mask = (0..<S * S).map { p -> UInt8 in
            topAlpha[p] > 0.25 ? 1 + topClass[p] : (topAlpha[p] > 0.1 ? ignoreLabel : 0)
        }
        return (Image8(width: S, height: S, channels: 3, pixels: pixels), Image8(width: S, height: S, channels: 1, pixels: mask))
    }

    /// A smooth random texture: a 5 x 5 grid of random colors, interpolated bilinearly.
    private func background(_ rng: inout SplitMix64) -> [Float] {
        let grid = 5, S = size
        let colors = (0..<grid * grid * 3).map { _ in Float(rng.next() % 256) }
        var out = [Float](repeating: 0, count: S * S * 3)
        let step = Float(grid - 1) / Float(S - 1)
        for y in 0..<S {
            let fy = Float(y) * step, gy = min(Int(fy), grid - 2), wy = fy - Float(gy)
            for x in 0..<S {
                let fx = Float(x) * step, gx = min(Int(fx), grid - 2), wx = fx - Float(gx)
                for c in 0..<3 {
                    func at(_ r: Int, _ q: Int) -> Float { colors[(r * grid + q) * 3 + c] }
                    let top = at(gy, gx) * (1 - wx) + at(gy, gx + 1) * wx
                    let bottom = at(gy + 1, gx) * (1 - wx) + at(gy + 1, gx + 1) * wx
                    out[(y * S + x) * 3 + c] = top * (1 - wy) + bottom * wy
                }
            }
        }
        return out
    }

    /// Bilinear taps of output coordinate `i` (PyTorch's align_corners=False, clamped at the edges).
    static func tap(_ i: Int, ratio: Float, limit: Int) -> (Int, Int, Float) {
        let position = max(0, (Float(i) + 0.5) * ratio - 0.5)
        let low = min(Int(position), limit - 1)
        return (low, min(low + 1, limit - 1), position - Float(low))
    }

    /// Writes `train` and `test` scenes as ROOT/{train,test}/{images,masks}/NNNNN.png and
    /// ROOT/classes.txt, made from the Fashion-MNIST IDX files in `fashionRoot`. Everything is
    /// written to a temporary folder beside ROOT and renamed at the end, so an interrupted run
    /// leaves no half-made set. `progress(done, total)` is called as scenes are written.
    public func write(to root: String, train: Int, test: Int, fashionRoot: String,
                      progress: (Int, Int) -> Void) throws {
        guard !FileManager.default.fileExists(atPath: root) else {
            throw DataError("\(root) already exists; remove it or choose another --out.")
        }
        let staging = root + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        do {
            let total = train + test
            var done = 0
            for (split, count) in [(FashionMNIST.Split.train, train), (.test, test)] where count > 0 {
                let garments = try FashionMNIST(root: fashionRoot, split: split)
                let folder = (staging as NSString).appendingPathComponent(split.rawValue)
                for sub in ["images", "masks"] {
                    try FileManager.default.createDirectory(atPath: (folder as NSString).appendingPathComponent(sub), withIntermediateDirectories: true)
                }
                var start = 0
                while start < count {
                    let end = min(count, start + 256)
                    try writeScenes(start..<end, split: split, garments: garments, folder: folder)
                    done += end - start
                    progress(done, total)
                    start = end
                }
            }
            try (Self.classNames.joined(separator: "\n") + "\n").write(toFile: (staging as NSString).appendingPathComponent("classes.txt"),
                                                                       atomically: true, encoding: .utf8)
            try FileManager.default.moveItem(atPath: staging, toPath: root)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// Makes and writes the scenes `range` of `split` in parallel.
    private func writeScenes(_ range: Range<Int>, split: FashionMNIST.Split, garments: FashionMNIST, folder: String) throws {
        var failures = [Error?](repeating: nil, count: range.count)
        failures.withUnsafeMutableBufferPointer { failed in
            nonisolated(unsafe) let failed = failed
            DispatchQueue.concurrentPerform(iterations: range.count) { i in
                let index = range.lowerBound + i
                let (image, mask) = scene(index, split: split, garments: garments)
                let name = String(format: "%05d.png", index)
                do {
                    try Data(try PNGCodec.encode(image)).write(to: URL(fileURLWithPath: "\(folder)/images/\(name)"))
                    try Data(try PNGCodec.encode(mask)).write(to: URL(fileURLWithPath: "\(folder)/masks/\(name)"))
                } catch {
                    failed[i] = error
                }
            }
        }
        if let error = failures.compactMap({ $0 }).first { throw DataError("cannot write the scenes in \(folder): \(error)") }
    }
}

import ABNData
import Foundation
import Testing

/// Tests/Fixtures/images: files written by Pillow, and what Pillow decodes from them.
let imageFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/images")

struct DecodedFixture: Decodable { let width, height, channels: Int; let pixels: [Int] }

/// The message of the DataError `body` throws ("no error" when it does not throw).
func dataError(_ body: () throws -> Void) -> String {
    do { try body(); return "no error" } catch let error as DataError { return error.message } catch { return "not a DataError: \(error)" }
}

@Suite("PNG and JPEG decoding")
struct ImageCodecTests {
    let expected: [String: DecodedFixture]

    init() throws {
        expected = try JSONDecoder().decode([String: DecodedFixture].self, from: Data(contentsOf: imageFixtures.appendingPathComponent("expected.json")))
    }

    @Test("PNG and JPEG files decode to what Pillow decodes (JPEG within 1 level)", arguments: ["rgb_7x5.png", "gray_5x4.png", "rgb_16x12.jpg", "gray_9x8.jpg"])
    func decodesLikePillow(name: String) throws {
        let want = try #require(expected[name])
        let path = imageFixtures.appendingPathComponent(name).path
        let image = try ImageFile.decode(path)
        #expect(image.width == want.width && image.height == want.height && image.channels == want.channels)
        let info = try ImageFile.info(path)
        #expect(info.width == want.width && info.height == want.height && info.channels == want.channels)
        let tolerance = name.hasSuffix(".jpg") ? 1 : 0
        let worst = zip(image.pixels, want.pixels).map { abs(Int($0) - $1) }.max() ?? -1
        #expect(image.pixels.count == want.pixels.count && worst <= tolerance, "worst pixel difference \(worst)")
    }

    @Test("gray becomes RGB by repetition and RGB becomes gray by BT.601 luma")
    func channelConversion() throws {
        let gray = try ImageFile.decode(imageFixtures.appendingPathComponent("gray_5x4.png").path, channels: 3)
        let want = try #require(expected["gray_5x4.png"])
        #expect(gray.channels == 3 && gray.pixels.enumerated().allSatisfy { Int($1) == want.pixels[$0 / 3] })
        let rgb = Image8(width: 2, height: 1, channels: 3, pixels: [255, 0, 0, 10, 200, 30])
        #expect(rgb.converted(toChannels: 1).pixels == [76, 124])  // 0.299*255 = 76.2; 2.99 + 117.4 + 3.42 = 123.8
    }

    @Test("PNG encoding round-trips and is deterministic; JPEG encoding decodes close to its input")
    func encoders() throws {
        var pixels = [UInt8](repeating: 0, count: 6 * 5 * 3)
        for i in pixels.indices { pixels[i] = UInt8((i * 37) % 256) }
        let image = Image8(width: 6, height: 5, channels: 3, pixels: pixels)
        let png = try PNGCodec.encode(image)
        #expect(try PNGCodec.decode(png, source: "memory") == image)
        #expect(try PNGCodec.encode(image) == png)
        var ramp = [UInt8](repeating: 0, count: 256)
        for i in 0..<256 { ramp[i] = UInt8(i % 16 * 8 + i / 16 * 4) }
        let smooth = Image8(width: 16, height: 16, channels: 1, pixels: ramp)
        let jpeg = try JPEGCodec.decode(JPEGCodec.encode(smooth, quality: 98), source: "memory")
        let worst = zip(jpeg.pixels, ramp).map { (a: UInt8, b: UInt8) -> Int in abs(Int(a) - Int(b)) }.max() ?? 99
        #expect(worst <= 3)
    }

    @Test("masks are 8-bit gray or palette PNGs: RGB and 16-bit files are refused with a message",
          arguments: ["rgb_mask_4x4.png", "gray16_4x4.png"])
    func maskFormats(name: String) {
        let message = dataError { _ = try ImageFile.decodeMask(imageFixtures.appendingPathComponent(name).path) }
        #expect(message.contains("8-bit grayscale nor a palette"), "\(message)")
    }

    @Test("a palette mask reads as its indices (Pillow's), whatever its colors and bit depth", arguments: ["palette_6x5.png", "palette_2bit_5x3.png"])
    func paletteMasks(name: String) throws {
        let want = try #require(expected[name])
        let mask = try ImageFile.decodeMask(imageFixtures.appendingPathComponent(name).path)
        #expect(mask.width == want.width && mask.height == want.height && mask.channels == 1)
        #expect(mask.pixels.map(Int.init) == want.pixels)
    }

    @Test("hostile files: a huge claimed size, garbage, a truncated PNG and a JPEG mask are refused, not trapped")
    func hostileFiles() throws {
        let huge = dataError { _ = try ImageFile.decode(imageFixtures.appendingPathComponent("huge_header.png").path) }
        #expect(huge.contains("100000x100000"), "\(huge)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("abn-codec-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let garbage = dir.appendingPathComponent("garbage.png")
        try Data("not an image at all".utf8).write(to: garbage)
        #expect(dataError { _ = try ImageFile.decode(garbage.path) }.contains("neither a PNG nor a JPEG"))
        let png = try Data(contentsOf: imageFixtures.appendingPathComponent("rgb_7x5.png"))
        for cut in [9, 30, png.count - 20] {
            let truncated = dir.appendingPathComponent("truncated-\(cut).png")
            try png.prefix(cut).write(to: truncated)
            #expect(dataError { _ = try ImageFile.decode(truncated.path) }.contains("not a readable PNG"), "cut at \(cut)")
        }
        let jpeg = try Data(contentsOf: imageFixtures.appendingPathComponent("rgb_16x12.jpg"))
        let truncatedJPEG = dir.appendingPathComponent("truncated.jpg")
        try jpeg.prefix(40).write(to: truncatedJPEG)
        #expect(dataError { _ = try ImageFile.decode(truncatedJPEG.path) }.contains("not a readable JPEG"))
        #expect(dataError { _ = try ImageFile.decodeMask(imageFixtures.appendingPathComponent("rgb_16x12.jpg").path) }.contains("not a PNG"))
        #expect(dataError { _ = try ImageFile.decode(dir.appendingPathComponent("absent.png").path) }.contains("cannot read"))
    }
}

import ABNData
import Testing

@Suite("Mask palettes")
struct MaskPaletteTests {
    /// An RGB triple as one comparable value.
    func rgb(_ c: (UInt8, UInt8, UInt8)) -> [UInt8] { [c.0, c.1, c.2] }

    @Test("the VOC palette: the construction's colors (black background, person pink), ignored white")
    func voc() {
        let colors = MaskPalette.voc.colors.map(rgb)
        #expect(colors.count == 256)
        #expect(colors[0] == [0, 0, 0] && colors[1] == [128, 0, 0] && colors[2] == [0, 128, 0] && colors[3] == [128, 128, 0])
        #expect(colors[4] == [0, 0, 128] && colors[15] == [192, 128, 128] && colors[20] == [0, 64, 128] && colors[255] == [255, 255, 255])
    }

    @Test("Cityscapes' palette: the official colors by train id, other ids as VOC, ignored white")
    func cityscapes() {
        let colors = Cityscapes.palette.colors.map(rgb), voc = MaskPalette.voc.colors.map(rgb)
        #expect(colors[0] == [128, 64, 128] && colors[2] == [70, 70, 70] && colors[10] == [70, 130, 180])  // road, building, sky
        #expect(colors[11] == [220, 20, 60] && colors[13] == [0, 0, 142] && colors[18] == [119, 11, 32])  // person, car, bicycle
        #expect(colors[19] == voc[19] && colors[255] == [255, 255, 255])
        #expect(colors[0] != voc[0])  // the control: a palette of its own
    }

    @Test("colorize and overlay use the palette's colors")
    func pictures() {
        let mask = Image8(width: 2, height: 1, channels: 1, pixels: [13, 255])
        #expect(Cityscapes.palette.colorize(mask).pixels == [0, 0, 142, 255, 255, 255])
        let image = Image8(width: 2, height: 1, channels: 3, pixels: [100, 100, 100, 0, 0, 0])
        #expect(Cityscapes.palette.overlay(image, mask: mask).pixels == [50, 50, 121, 128, 128, 128])  // halves, rounded (127.5 up)
    }
}

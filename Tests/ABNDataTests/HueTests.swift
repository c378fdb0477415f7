import ABNData
import Testing

@Suite("Hue")
struct HueTests {
    /// The first three lanes, to compare with an RGB triple within `tolerance`.
    func close(_ v: SIMD4<Float>, _ rgb: [Float], tolerance: Float = 1e-3) -> Bool {
        (0..<3).allSatisfy { abs(v[$0] - rgb[$0]) <= tolerance }
    }

    @Test("a turned hue is HSV's: the primaries go round, values as Python's colorsys gives them")
    func turns() {
        let red = SIMD4<Float>(255, 0, 0, 0)
        #expect(close(turningHue(red, by: 120), [0, 255, 0]) && close(turningHue(red, by: -120), [0, 0, 255]))
        #expect(close(turningHue(red, by: 60), [255, 255, 0]) && close(turningHue(red, by: 360), [255, 0, 0]))
        // colorsys.hsv_to_rgb of rgb_to_hsv with the hue moved by degrees / 360
        #expect(close(turningHue(SIMD4(200, 100, 50, 0), by: 36), [200, 190, 50]))
        #expect(close(turningHue(SIMD4(200, 100, 50, 0), by: -36), [200, 50, 90]))
        #expect(close(turningHue(SIMD4(30, 180, 90, 0), by: 25), [30, 180, 152.5]))
        #expect(close(turningHue(SIMD4(10, 20, 250, 0), by: -30), [10, 140, 250]))
    }

    @Test("grays keep their value; a turn and its opposite give the color back")
    func grayAndInverse() {
        #expect(turningHue(SIMD4(90, 90, 90, 0), by: 30) == SIMD4(90, 90, 90, 0))
        let color = SIMD4<Float>(37, 201, 118, 0)
        #expect(close(turningHue(turningHue(color, by: 33), by: -33), [37, 201, 118]))
        #expect(!close(turningHue(color, by: 33), [37, 201, 118]))  // the control: the turn changed it
    }
}

/// `rgb` (0...255 in its first three lanes, the fourth 0) with its hue turned by `degrees`, its
/// saturation and value (HSV) kept: the hue jitter of `SamplePipeline`'s photometric changes.
public func turningHue(_ rgb: SIMD4<Float>, by degrees: Float) -> SIMD4<Float> {
    let high = max(rgb[0], rgb[1], rgb[2]), low = min(rgb[0], rgb[1], rgb[2]), chroma = high - low
    guard chroma > 0 else { return rgb }  // a gray has no hue
    // hue in sixths of the circle, 0..<6: red 0, yellow 1, green 2, cyan 3, blue 4, magenta 5
    var sector: Float
    if high == rgb[0] {
        sector = (rgb[1] - rgb[2]) / chroma
    } else if high == rgb[1] {
        sector = 2 + (rgb[2] - rgb[0]) / chroma
    } else {
        sector = 4 + (rgb[0] - rgb[1]) / chroma
    }
    sector += degrees / 60
    sector -= 6 * (sector / 6).rounded(.down)
    // each channel's value at the turned hue: high where the hue is within a sixth of it
    // (red at 0, green at 2, blue at 4), falling linearly to low a sixth further on
    func channel(_ center: Float) -> Float {
        var d = abs(sector - center)
        d = min(d, 6 - d)
        return high - chroma * min(1, max(0, d - 1))
    }
    return SIMD4(channel(0), channel(2), channel(4), 0)
}

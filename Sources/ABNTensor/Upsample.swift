/// Bilinear resizing with PyTorch's `interpolate(mode="bilinear", align_corners=False)`
/// semantics: output pixel o reads the input at max(0, (o + 0.5) * in / out - 0.5), between
/// the two nearest input pixels (the last one repeated at the edge).

/// The two input positions and the weight of the second for each of `outSize` outputs.
func bilinearTaps(outSize: Int, inSize: Int) -> [(low: Int, high: Int, weight: Float)] {
    let scale = Float(inSize) / Float(outSize)
    return (0..<outSize).map { o in
        let source = max(0, scale * (Float(o) + 0.5) - 0.5)
        let low = min(Int(source), inSize - 1)
        return (low, low < inSize - 1 ? low + 1 : low, source - Float(low))
    }
}

/// output (N, C, OH, OW) = bilinear resize of input (N, C, H, W).
public func bilinearUpsampleForward(output: Tensor, input: Tensor) {
    let s = input.shape, o = output.shape
    checkShape(s.count == 4 && o.count == 4 && o[0] == s[0] && o[1] == s[1],
               "bilinear resize: output shape \(o) does not match input shape \(s) (want (N, C, OH, OW) for (N, C, H, W))")
    let H = s[2], W = s[3], OH = o[2], OW = o[3]
    let rows = bilinearTaps(outSize: OH, inSize: H), columns = bilinearTaps(outSize: OW, inSize: W)
    let x = input.data, y = output.data
    Parallel.forEach(s[0] * s[1]) { plane in
        let p = x + plane * H * W, q = y + plane * OH * OW
        for oy in 0..<OH {
            let r = rows[oy]
            let top = p + r.low * W, bottom = p + r.high * W
            for ox in 0..<OW {
                let c = columns[ox]
                let upper = top[c.low] * (1 - c.weight) + top[c.high] * c.weight
                let lower = bottom[c.low] * (1 - c.weight) + bottom[c.high] * c.weight
                q[oy * OW + ox] = upper * (1 - r.weight) + lower * r.weight
            }
        }
    }
}

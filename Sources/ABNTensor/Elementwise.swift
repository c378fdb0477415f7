/// sums (C) = sum over images and pixels of x (images, C, pixels); overwritten or, with
/// `accumulate`, added to. Float lanes within a plane, Double across planes.
func channelSums(_ sums: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                 images: Int, channels: Int, pixels: Int, accumulate: Bool) {
    Parallel.forEach(channels) { c in
        var total = 0.0
        for n in 0..<images { total += laneSum(x + (n * channels + c) * pixels, count: pixels) }
        sums[c] = accumulate ? sums[c] + Float(total) : Float(total)
    }
}

/// Splits `count` elements into blocks of at least 16 KiB for the parallel loops.
@inline(__always)
func forBlocks(_ count: Int, _ body: (Range<Int>) -> Void) {
    Parallel.forRanges(count, minimumPerThread: 4096, body)
}

/// Residual add: output += other, element-wise (shapes must match). Its backward passes
/// the output gradient unchanged to both branches.
public func addInPlace(_ output: Tensor, _ other: Tensor) {
    checkShape(output.shape == other.shape, "residual add: shapes \(output.shape) and \(other.shape) differ")
    let y = output.data, x = other.data
    forBlocks(output.count) { r in
        for i in r { y[i] += x[i] }
    }
}

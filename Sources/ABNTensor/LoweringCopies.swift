// Copies the lowerings share: row gathers and scatters, staging-buffer scatters and partial-sum
// reductions.

/// Copies `rows` output rows of `width` values whose input rows lie one after the other at src
/// (stride 1, output as wide as the input, the same column shift) as one contiguous copy, then
/// zeroes the columns outside `valid`, which came from the neighbouring rows.
@inline(__always)
func copyContiguousRows(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows: Int, width: Int, valid v: Range<Int>) {
    let first = v.lowerBound, last = (rows - 1) * width + v.upperBound
    (dst + first).update(from: src + first, count: last - first)
    for r in 0..<rows {
        let d = dst + r * width
        for ow in 0..<v.lowerBound { d[ow] = 0 }
        for ow in v.upperBound..<width { d[ow] = 0 }
    }
}

/// dst[k] = src[2k] for k in 0..<count, four at a time (the even lanes of eight loaded values;
/// a load never reaches past src[2 * (count - 1)]).
@inline(__always)
func gatherEven(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    var k = 0
    while k + 5 <= count {
        let pairs = UnsafeRawPointer(src + 2 * k).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(dst + k).storeBytes(of: pairs.evenHalf, as: SIMD4<Float>.self)
        k += 4
    }
    while k < count { dst[k] = src[2 * k]; k += 1 }
}

/// dst[2k] += src[k] for k in 0..<count, four at a time (the odd values in between get + 0;
/// no access reaches past dst[2 * (count - 1)]).
@inline(__always)
func scatterAddEven(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    var k = 0
    while k + 5 <= count {
        let target = UnsafeMutableRawPointer(dst + 2 * k)
        var spread = SIMD8<Float>()
        spread.evenHalf = UnsafeRawPointer(src + k).loadUnaligned(as: SIMD4<Float>.self)
        target.storeBytes(of: target.loadUnaligned(as: SIMD8<Float>.self) + spread, as: SIMD8<Float>.self)
        k += 4
    }
    while k < count { dst[2 * k] += src[k]; k += 1 }
}

/// y (images, C, P) = (accumulate ? y : 0) + s + bias, s (C, ld) holding image b's channel c
/// at s + c * ld + b * imageStride.
func scatterChunk(_ y: UnsafeMutablePointer<Float>, _ s: UnsafePointer<Float>, ld: Int, bias: UnsafePointer<Float>?,
                  accumulate: Bool, imageStride: Int, images: Int, channels: Int, pixels P: Int) {
    for b in 0..<images {
        for o in 0..<channels {
            let v = bias?[o] ?? 0
            let src = s + o * ld + b * imageStride, dst = y + (b * channels + o) * P
            if accumulate {
                for p in 0..<P { dst[p] += src[p] + v }
            } else {
                for p in 0..<P { dst[p] = src[p] + v }
            }
        }
    }
}

/// dst (C, ld) = src (images, C, P): a chunk of NCHW images as one matrix for a GEMM, image b's
/// channel c at dst + c * ld + b * P.
func gatherChannelMajor(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, ld: Int,
                        images: Int, channels: Int, pixels P: Int) {
    for b in 0..<images {
        for c in 0..<channels {
            (dst + c * ld + b * P).update(from: src + (b * channels + c) * P, count: P)
        }
    }
}

/// dW (count) = (accumulate ? dW : 0) + the sum, in order, of `partials`; with `transposed`
/// (rows, columns), dW is (columns, rows) and each partial holds its transpose (rows, columns).
func sumPartials(_ dW: UnsafeMutablePointer<Float>, _ partials: ArraySlice<UnsafeMutablePointer<Float>>,
                 accumulate: Bool, count: Int, transposed: (rows: Int, columns: Int)? = nil) {
    forBlocks(count) { r in
        for i in r {
            let j = transposed.map { (i % $0.rows) * $0.columns + i / $0.rows } ?? i
            var s: Float = accumulate ? dW[i] : 0
            for p in partials { s += p[j] }
            dW[i] = s
        }
    }
}

// Sums over one image plane of a channel, returned in Double for the caller to accumulate
// across planes. The plain sums run in the C kernels (Sums.c: 16 Double lanes); the
// sum-and-dot of the less common norm backward paths runs here in eight Float lanes over
// blocks of `laneBlock` values whose sums are added in Double.
import CKernels

/// Values per block: 512 adds per lane.
@usableFromInline let laneBlock = 4096

/// The sum of p[0..<count].
public func laneSum(_ p: UnsafePointer<Float>, count: Int) -> Double {
    var sum = 0.0
    abn_plane_sum(p, count, &sum)
    return sum
}

/// The sum of (p[i] - center)^2 over p[0..<count].
public func laneSumOfSquares(_ p: UnsafePointer<Float>, count: Int, around center: Float) -> Double {
    var sum = 0.0
    abn_plane_squares(p, count, center, &sum)
    return sum
}

/// The sums of a[0..<count] and of a[i] * b[i].
@inlinable
public func laneSumAndDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> (sum: Double, dot: Double) {
    guard count > laneBlock else { return laneBlockSumAndDot(a, b, count: count) }
    var total = (sum: 0.0, dot: 0.0)
    for start in stride(from: 0, to: count, by: laneBlock) {
        let part = laneBlockSumAndDot(a + start, b + start, count: min(laneBlock, count - start))
        total.sum += part.sum
        total.dot += part.dot
    }
    return total
}

@inlinable
func laneBlockSumAndDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> (sum: Double, dot: Double) {
    var sums = SIMD8<Float>(), dots = SIMD8<Float>()
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var i = 0
    while i + 8 <= count {
        let x = ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        sums += x
        dots += x * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    var tailSum: Float = 0, tailDot: Float = 0
    while i < count { tailSum += a[i]; tailDot += a[i] * b[i]; i += 1 }
    return (Double(sums.sum()) + Double(tailSum), Double(dots.sum()) + Double(tailDot))
}

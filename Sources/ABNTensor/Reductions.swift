// Sums over one image plane of a channel in eight independent Float lanes, returned in Double
// for the caller to accumulate across planes. A plain `s += p[i]` loop is one long dependency
// chain that the compiler may not reorder (strict floating point), so it runs at one add per
// add-latency; eight lanes vectorize. A Float lane stays accurate over a few hundred adds, so
// long planes (segmentation: 512 x 512 and more) are summed in blocks of `laneBlock` values
// whose sums are added in Double.

/// Values per block: 512 adds per lane.
@usableFromInline let laneBlock = 4096

/// The sum of p[0..<count].
@inlinable
public func laneSum(_ p: UnsafePointer<Float>, count: Int) -> Double {
    guard count > laneBlock else { return laneBlockSum(p, count: count) }
    return stride(from: 0, to: count, by: laneBlock).reduce(0) { $0 + laneBlockSum(p + $1, count: min(laneBlock, count - $1)) }
}

@inlinable
func laneBlockSum(_ p: UnsafePointer<Float>, count: Int) -> Double {
    var lanes = SIMD8<Float>()
    let raw = UnsafeRawPointer(p)
    var i = 0
    while i + 8 <= count {
        lanes += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    var tail: Float = 0
    while i < count { tail += p[i]; i += 1 }
    return Double(lanes.sum()) + Double(tail)
}

/// The sum of (p[i] - center)^2 over p[0..<count].
@inlinable
public func laneSumOfSquares(_ p: UnsafePointer<Float>, count: Int, around center: Float) -> Double {
    guard count > laneBlock else { return laneBlockSumOfSquares(p, count: count, around: center) }
    return stride(from: 0, to: count, by: laneBlock).reduce(0) {
        $0 + laneBlockSumOfSquares(p + $1, count: min(laneBlock, count - $1), around: center)
    }
}

@inlinable
func laneBlockSumOfSquares(_ p: UnsafePointer<Float>, count: Int, around center: Float) -> Double {
    var lanes = SIMD8<Float>()
    let c = SIMD8<Float>(repeating: center)
    let raw = UnsafeRawPointer(p)
    var i = 0
    while i + 8 <= count {
        let d = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - c
        lanes += d * d
        i += 8
    }
    var tail: Float = 0
    while i < count { let d = p[i] - center; tail += d * d; i += 1 }
    return Double(lanes.sum()) + Double(tail)
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

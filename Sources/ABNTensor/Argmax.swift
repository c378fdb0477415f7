/// The index of the largest of `count` (at least 1) values at `values`, `stride` apart: the
/// first of equal ones. Classes of a row of logits (stride 1) or of a pixel (stride H*W).
@inlinable
public func argmax(_ values: UnsafePointer<Float>, count: Int, stride: Int = 1) -> Int {
    var best = 0
    for j in 1..<count where values[j * stride] > values[best * stride] { best = j }
    return best
}

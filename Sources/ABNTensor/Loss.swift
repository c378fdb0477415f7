import Foundation

/// Softmax cross-entropy of logits (N, classes) against integer labels.
///
/// Returns sum over the N samples of -log softmax(logits)[label], divided by `normalizer`,
/// and writes dLogits (N, classes) = (softmax - onehot) / normalizer. The normalizer is
/// passed in so a rank holding part of a batch divides by the global batch size.
@discardableResult
public func softmaxCrossEntropy(dLogits: Tensor?, logits: Tensor, labels: [Int], normalizer: Double) -> Double {
    checkShape(logits.shape.count == 2 && logits.shape[0] == labels.count,
               "cross-entropy: logits shape \(logits.shape) does not match \(labels.count) labels")
    if let dLogits { checkShape(dLogits.shape == logits.shape, "cross-entropy: dLogits shape \(dLogits.shape) differs from logits shape \(logits.shape)") }
    precondition(normalizer > 0, "cross-entropy: the normalizer must be positive, got \(normalizer)")
    let n = logits.shape[0], k = logits.shape[1]
    var total = 0.0
    for i in 0..<n {
        let row = logits.data + i * k
        let label = labels[i]
        precondition(label >= 0 && label < k, "cross-entropy: label \(label) of sample \(i) is outside 0..<\(k)")
        var m = -Float.infinity
        for j in 0..<k { m = max(m, row[j]) }
        var sum = 0.0
        for j in 0..<k { sum += Double(expf(row[j] - m)) }
        let logSum = Double(m) + log(sum)
        total += logSum - Double(row[label])
        if let dLogits {
            let g = dLogits.data + i * k
            for j in 0..<k {
                let p = exp(Double(row[j]) - logSum)
                g[j] = Float((p - (j == label ? 1 : 0)) / normalizer)
            }
        }
    }
    return total / normalizer
}

import ABNTensor

/// The ResNets' classifier head: global average pooling of the features (N, C, H, W) to
/// (N, C), then the linear layer `fc` to (N, classes). It keeps the pooled features for backward.
final class PooledClassifier {
    let fc: LinearLayer

    // kept for backward
    private var pooled: Tensor?
    private var featureShape: [Int] = []

    init(channels: Int, classes: Int, rng: inout SplitMix64) {
        fc = LinearLayer("fc", inFeatures: channels, outFeatures: classes, rng: &rng)
    }

    var allParameters: [Parameter] { fc.allParameters }

    /// Multiply-adds of one image, forward (the linear layer's).
    var multiplyAdds: Double { Double(fc.weight.count) }

    /// Logits (N, classes) of `features` (N, C, H, W).
    func forward(_ features: Tensor) -> Tensor {
        let pooled = Tensor(uninitialized: [features.shape[0], features.shape[1]])
        globalAveragePoolForward(output: pooled, input: features)
        self.pooled = pooled
        featureShape = features.shape
        return fc.forward(pooled)
    }

    /// The features' gradient (N, C, H, W) from the logits' (N, classes); `ready` hears of the
    /// linear layer's finished gradients.
    func backward(_ dLogits: Tensor, gradientsReady ready: (Parameter) -> Void) -> Tensor {
        guard let pooled else { preconditionFailure("PooledClassifier.backward before forward") }
        let dPooled = fc.backward(dLogits, input: pooled)
        ready(fc.weight); ready(fc.bias)
        self.pooled = nil
        let dFeatures = Tensor(uninitialized: featureShape)
        globalAveragePoolBackward(dInput: dFeatures, dOutput: dPooled)
        return dFeatures
    }
}

import CKernels

/// Hyper-parameters of SGD with momentum, as in PyTorch's `torch.optim.SGD` (dampening 0).
public struct SGDSettings: Sendable, Equatable, Codable {
    public var learningRate: Float
    public var momentum: Float
    public var nesterov: Bool
    /// Coupled L2 weight decay: `weightDecay * p` is added to the gradient before momentum
    /// (PyTorch's SGD form, not the decoupled form of AdamW).
    public var weightDecay: Float

    public init(learningRate: Float, momentum: Float = 0.9, nesterov: Bool = true, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }
}

/// One SGD step over `count` flat parameters, in place:
///   g = grad + wd * p;  v = momentum * v + g;  step = nesterov ? g + momentum * v : v;  p -= lr * step.
/// `velocity` starts at zero, which reproduces PyTorch's first step (v = g).
public func sgdStep(parameters: UnsafeMutablePointer<Float>, velocity: UnsafeMutablePointer<Float>,
                    gradients: UnsafePointer<Float>, count: Int, settings s: SGDSettings) {
    forBlocks(count) { r in
        abn_sgd(parameters + r.lowerBound, velocity + r.lowerBound, gradients + r.lowerBound, r.count, s.learningRate, s.momentum,
                s.weightDecay, s.nesterov ? 1 : 0)
    }
}

import ABNTensor

/// A fully connected layer: weight (out, in), bias (out), PyTorch's default initialization
/// (uniform in +-1/sqrt(in)).
public final class LinearLayer {
    public let weight: Parameter
    public let bias: Parameter

    public init(_ name: String, inFeatures: Int, outFeatures: Int, rng: inout SplitMix64) {
        let bound = Float(1 / Double(inFeatures).squareRoot())
        weight = Parameter("\(name).weight", shape: [outFeatures, inFeatures], uniform: -bound..<bound, rng: &rng)
        bias = Parameter("\(name).bias", shape: [outFeatures], uniform: -bound..<bound, rng: &rng)
    }

    public var allParameters: [Parameter] { [weight, bias] }

    public func forward(_ x: Tensor) -> Tensor {
        let y = Tensor(uninitialized: [x.shape[0], weight.shape[0]])
        linearForward(output: y, input: x, weight: weight.value, bias: bias.value)
        return y
    }

    public func backward(_ dy: Tensor, input x: Tensor) -> Tensor {
        let dx = Tensor(uninitialized: x.shape)
        linearBackward(dInput: dx, dWeight: weight.gradient, dBias: bias.gradient, dOutput: dy, input: x, weight: weight.value)
        return dx
    }
}

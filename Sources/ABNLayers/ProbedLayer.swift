import ABNTensor

/// What a `ProbedLayer.probe` is shown.
public enum NormProbe: String, Sendable {
    case output = "output"
    case inputGradient = "input_grad"
}

/// A layer whose output has passed a (possibly kinked) activation, which checks such as
/// `abn verify` watch: norm layers and the activations after residual adds.
public protocol ProbedLayer: AnyObject {
    var name: String { get }
    var activation: Activation { get }
    /// Called with the layer's output at the end of forward and with its input gradient at the
    /// end of backward; the tensor is only valid during the call.
    var probe: ((any ProbedLayer, NormProbe, Tensor) -> Void)? { get set }
    /// Multiplies the incoming gradient at these elements (flat indices into the output) by these
    /// factors at the start of the next backward pass, then forgets them: `abn verify` uses it to
    /// take the activation's derivative from the side of its kink that another run's rounding chose.
    var gradientFactors: [(index: Int, factor: Float)] { get set }
}

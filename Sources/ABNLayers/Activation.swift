import Foundation

/// The activation fused into a norm layer. It must be invertible, because InPlace-ABN
/// recovers the activation's input from its output in the backward pass.
public enum Activation: Sendable, Equatable, CustomStringConvertible {
    /// x for x >= 0, slope * x otherwise (slope > 0).
    case leakyReLU(slope: Float)
    /// x for x >= 0, alpha * (exp(x) - 1) otherwise (alpha > 0).
    case elu(alpha: Float)
    case identity

    /// Parses the names of the reference implementation: `leaky_relu` (parameter: slope),
    /// `elu` (alpha), `identity`. `relu` and non-positive parameters are rejected.
    public init(name: String, parameter: Float?) throws {
        switch name {
        case "leaky_relu":
            let slope = parameter ?? 0.01
            guard slope > 0 else {
                throw LayerError.invalidActivation("leaky_relu needs a slope > 0 to be invertible, got \(slope); use e.g. 0.01.")
            }
            self = .leakyReLU(slope: slope)
        case "elu":
            let alpha = parameter ?? 1
            guard alpha > 0 else {
                throw LayerError.invalidActivation("elu needs alpha > 0 to be invertible, got \(alpha); use e.g. 1.0.")
            }
            self = .elu(alpha: alpha)
        case "identity", "none":
            self = .identity
        case "relu":
            throw LayerError.invalidActivation(
                "relu is not invertible (it maps every negative input to 0), so InPlace-ABN cannot recover its input in the backward pass; use leaky_relu with a small slope such as 0.01.")
        default:
            throw LayerError.invalidActivation("unknown activation '\(name)'; use leaky_relu, elu or identity.")
        }
    }

    /// The derivative just below and just above the kink at 0, where rounding alone can choose
    /// the branch; nil for identity, which has none.
    public var kinkDerivatives: (below: Float, above: Float)? {
        switch self {
        case .leakyReLU(let slope): (slope, 1)
        case .elu(let alpha): (alpha, 1)
        case .identity: nil
        }
    }

    public var name: String {
        switch self {
        case .leakyReLU: "leaky_relu"
        case .elu: "elu"
        case .identity: "identity"
        }
    }

    public var parameter: Float {
        switch self {
        case .leakyReLU(let slope): slope
        case .elu(let alpha): alpha
        case .identity: 0
        }
    }

    public var description: String { self == .identity ? name : "\(name)(\(parameter))" }

    /// z = act(y).
    @inline(__always)
    func apply(_ y: Float) -> Float {
        switch self {
        case .leakyReLU(let slope): return y >= 0 ? y : y * slope
        case .elu(let alpha): return y >= 0 ? y : alpha * expm1f(y)
        case .identity: return y
        }
    }

    /// act'(y) from the output z = act(y): the derivative there.
    @inline(__always)
    func derivative(atOutput z: Float) -> Float {
        switch self {
        case .leakyReLU(let slope): return z < 0 ? slope : 1
        case .elu(let alpha): return z < 0 ? z + alpha : 1
        case .identity: return 1
        }
    }

    /// y = act^-1(z).
    @inline(__always)
    func inverse(_ z: Float) -> Float {
        switch self {
        case .leakyReLU(let slope): return z < 0 ? z / slope : z
        case .elu(let alpha): return z < 0 ? Activation.eluInverse(z, alpha: alpha) : z
        case .identity: return z
        }
    }

    /// ELU's inverse for z < 0: log1p(z / alpha). Below y of about -16, z rounds to -alpha
    /// exactly and y is lost (log1p(-1) is -inf, and 0 * -inf poisons the backward sums with
    /// NaN): there the inverse stops at log1p(-1 + ulp), about -15.9, where dy is 0 anyway.
    @inline(__always)
    static func eluInverse(_ z: Float, alpha: Float) -> Float {
        log1pf(max(z / alpha, -1 + Float.ulpOfOne))
    }
}

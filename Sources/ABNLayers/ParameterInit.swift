import ABNTensor

/// How a parameter's first values are drawn. A draw takes the generator's state when its layer
/// is declared and moves the generator past its values (2 draws per normal value, 1 per
/// uniform one), so a network's initial weights do not depend on when, or whether, they are
/// written: `ParameterStore` writes them straight into its flat buffer.
public enum ParameterInit: Sendable {
    case constant(Float)
    /// Normal values with standard deviation `std`, drawn from the generator state given.
    case normal(std: Float, SplitMix64)
    /// Uniform values in [low, high), drawn from the generator state given.
    case uniform(low: Float, high: Float, SplitMix64)

    /// How many calls of the generator's `next()` drawing `count` values takes.
    func draws(count: Int) -> Int {
        switch self {
        case .constant: 0
        case .normal: 2 * count
        case .uniform: count
        }
    }

    /// Writes the values into `tensor`.
    func fill(_ tensor: Tensor) {
        switch self {
        case .constant(let value): tensor.fill(value)
        case .normal(let std, var rng): tensor.fillNormal(std: std, using: &rng)
        case .uniform(let low, let high, var rng): tensor.fillUniform(low, high, using: &rng)
        }
    }
}

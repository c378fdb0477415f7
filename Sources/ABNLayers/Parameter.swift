import ABNTensor

/// A named tensor of a model: a trainable parameter (with a gradient) or a buffer such as a
/// running statistic. Names follow the PyTorch state-dict convention (`stage1.0.bn1.weight`).
///
/// A layer declares its parameters by name, shape and first values (`ParameterInit`);
/// `ParameterStore` then writes those values into one flat buffer and the parameter holds a
/// view of it. A parameter read before any store holds it gets a tensor of its own.
public final class Parameter {
    public enum Kind: Sendable { case trainable, buffer }

    public let name: String
    public let kind: Kind
    public let shape: [Int]
    /// The first values, until a tensor holds them.
    private var initial: ParameterInit?
    private var stored: Tensor?
    /// Same shape as `value`; a view into the store's flat gradient buffer (trainable only).
    public private(set) var gradient: Tensor?
    /// Offset of `value` in the store's flat buffer of its kind.
    public private(set) var offset = 0

    /// A parameter of `shape` whose first values `initial` draws.
    public init(_ name: String, _ kind: Kind = .trainable, shape: [Int], initial: ParameterInit) {
        self.name = name
        self.kind = kind
        self.shape = shape
        self.initial = initial
    }

    /// A trainable parameter of `shape` with normal values of standard deviation `std` drawn from
    /// `rng`, which moves past them: the next parameter's draws follow this one's.
    public convenience init(_ name: String, shape: [Int], normalStd std: Float, rng: inout SplitMix64) {
        self.init(name, shape: shape, initial: .normal(std: std, rng))
        rng.skip(initial!.draws(count: count))
    }

    /// A trainable parameter of `shape` with values uniform in `range` drawn from `rng`, which
    /// moves past them.
    public convenience init(_ name: String, shape: [Int], uniform range: Range<Float>, rng: inout SplitMix64) {
        self.init(name, shape: shape, initial: .uniform(low: range.lowerBound, high: range.upperBound, rng))
        rng.skip(initial!.draws(count: count))
    }

    /// A parameter holding `value`.
    public init(_ name: String, _ kind: Kind = .trainable, value: Tensor) {
        self.name = name
        self.kind = kind
        shape = value.shape
        stored = value
    }

    /// Number of scalars.
    public var count: Int { shape.reduce(1, *) }

    /// The values (a view of the store's buffer once a store holds the parameter).
    public var value: Tensor {
        if let stored { return stored }
        let own = Tensor(uninitialized: shape)
        bind(own)
        return own
    }

    /// Makes `tensor` (of `shape`) hold the values: the first ones drawn, or those held so far.
    private func bind(_ tensor: Tensor) {
        if let stored { tensor.copy(from: stored) } else { initial!.fill(tensor) }
        stored = tensor
        initial = nil
    }

    /// Holds a view of `values` at `offset` (and of `gradients`, for a trainable parameter).
    func bind(values: Tensor, gradients: Tensor?, offset: Int) {
        bind(values.slice(from: offset, shape: shape))
        gradient = gradients?.slice(from: offset, shape: shape)
        self.offset = offset
    }
}

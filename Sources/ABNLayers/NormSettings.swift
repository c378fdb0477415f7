/// Settings shared by every norm layer of a network.
public struct NormSettings: Sendable, Equatable {
    public var mode: NormMode
    public var activation: Activation
    public var eps: Float
    public var momentum: Float

    public init(mode: NormMode, activation: Activation = .leakyReLU(slope: 0.01), eps: Float = 1e-5, momentum: Float = 0.1) {
        self.mode = mode
        self.activation = activation
        self.eps = eps
        self.momentum = momentum
    }

    /// A norm layer `name` of `channels` channels with these settings; `activation` replaces
    /// theirs (a norm before a residual add has none).
    public func layer(_ name: String, channels: Int, activation: Activation? = nil) throws -> NormAct {
        try NormAct(name, channels: channels, mode: mode, activation: activation ?? self.activation, eps: eps, momentum: momentum)
    }
}

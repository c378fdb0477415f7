import ABNTensor

/// SGD with momentum (PyTorch form, see `sgdStep`) over a store's flat parameter buffer.
public final class SGD {
    public var settings: SGDSettings
    /// (P) momentum buffer, same layout as the parameters.
    public let velocity: Tensor
    private let store: ParameterStore

    public init(_ store: ParameterStore, settings: SGDSettings) {
        self.store = store
        self.settings = settings
        velocity = Tensor(zeros: store.values.shape)
    }

    /// Updates every parameter from `store.gradients`.
    public func step() {
        sgdStep(parameters: store.values.data, velocity: velocity.data, gradients: store.gradients.data,
                count: store.values.count, settings: settings)
    }
}

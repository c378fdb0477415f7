import ABNTensor

/// A named tensor of a model: a trainable parameter (with a gradient) or a buffer such as a
/// running statistic. Names follow the PyTorch state-dict convention (`stage1.0.bn1.weight`).
///
/// A parameter starts with a tensor of its own; `ParameterStore` then moves it into one flat
/// buffer and leaves the parameter holding a view.
public final class Parameter {
    public enum Kind: Sendable { case trainable, buffer }

    public let name: String
    public let kind: Kind
    public private(set) var value: Tensor
    /// Same shape as `value`; a view into the store's flat gradient buffer (trainable only).
    public private(set) var gradient: Tensor?
    /// Offset of `value` in the store's flat buffer of its kind.
    public private(set) var offset = 0

    public init(_ name: String, _ kind: Kind = .trainable, value: Tensor) {
        self.name = name
        self.kind = kind
        self.value = value
    }

    public var shape: [Int] { value.shape }

    fileprivate func bind(values: Tensor, gradients: Tensor?, offset: Int) {
        let view = values.slice(from: offset, shape: value.shape)
        view.copy(from: value)
        value = view
        gradient = gradients?.slice(from: offset, shape: view.shape)
        self.offset = offset
    }
}

/// All parameters of a model in one flat buffer (and their gradients in another, same
/// layout), and all buffers in a third, so gradient averaging, the optimizer and checkpoints
/// work on contiguous memory. Order is declaration order (the forward order of the model).
public final class ParameterStore {
    /// Trainable parameters in declaration order.
    public let parameters: [Parameter]
    /// Buffers (running statistics) in declaration order.
    public let buffers: [Parameter]
    /// (P) all trainable values.
    public let values: Tensor
    /// (P) their gradients, same layout.
    public let gradients: Tensor
    /// (B) all buffer values.
    public let bufferValues: Tensor

    public init(_ all: [Parameter]) {
        var seen = Set<String>()
        for p in all { precondition(seen.insert(p.name).inserted, "two parameters are named \(p.name)") }
        parameters = all.filter { $0.kind == .trainable }
        buffers = all.filter { $0.kind == .buffer }
        values = Tensor(uninitialized: [parameters.reduce(0) { $0 + $1.value.count }])
        gradients = Tensor(zeros: values.shape)
        bufferValues = Tensor(uninitialized: [buffers.reduce(0) { $0 + $1.value.count }])
        var offset = 0
        for p in parameters {
            p.bind(values: values, gradients: gradients, offset: offset)
            offset += p.value.count
        }
        offset = 0
        for b in buffers {
            b.bind(values: bufferValues, gradients: nil, offset: offset)
            offset += b.value.count
        }
    }

    /// Number of trainable scalars.
    public var parameterCount: Int { values.count }
}

import ABNTensor

/// All parameters of a model in one flat buffer (and their gradients in another, same
/// layout), and all buffers in a third, so gradient averaging, the optimizer and checkpoints
/// work on contiguous memory. Order is declaration order (the forward order of the model).
public final class ParameterStore {
    /// While true (`ParameterStore.$declaredOnly.withValue(true) { ... }`), a new store holds
    /// no values: it only names and counts its parameters, so that a network can be counted
    /// before its memory is spent.
    @TaskLocal public static var declaredOnly = false

    /// Trainable parameters in declaration order.
    public let parameters: [Parameter]
    /// Buffers (running statistics) in declaration order.
    public let buffers: [Parameter]
    /// (P) all trainable values (no elements in a declared-only store).
    public let values: Tensor
    /// (P) their gradients, same layout.
    public let gradients: Tensor
    /// (B) all buffer values.
    public let bufferValues: Tensor
    /// Number of trainable scalars.
    public let parameterCount: Int

    public init(_ all: [Parameter]) {
        var seen = Set<String>()
        for p in all { precondition(seen.insert(p.name).inserted, "two parameters are named \(p.name)") }
        parameters = all.filter { $0.kind == .trainable }
        buffers = all.filter { $0.kind == .buffer }
        parameterCount = parameters.reduce(0) { $0 + $1.count }
        let bufferCount = Self.declaredOnly ? 0 : buffers.reduce(0) { $0 + $1.count }
        values = Tensor(uninitialized: [Self.declaredOnly ? 0 : parameterCount])
        gradients = Tensor(zeros: values.shape)
        bufferValues = Tensor(uninitialized: [bufferCount])
        guard !Self.declaredOnly else { return }
        var offset = 0
        for p in parameters {
            p.bind(values: values, gradients: gradients, offset: offset)
            offset += p.count
        }
        offset = 0
        for b in buffers {
            b.bind(values: bufferValues, gradients: nil, offset: offset)
            offset += b.count
        }
    }
}

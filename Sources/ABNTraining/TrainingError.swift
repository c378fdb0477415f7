/// Errors a user can cause: configuration, data, checkpoints, world size. Each message says
/// what is wrong and what to do.
public struct TrainingError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

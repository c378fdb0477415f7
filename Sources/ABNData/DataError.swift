/// Errors a user can cause with data: a missing folder, an unreadable or hostile file, a
/// layout that does not match. Each message says what is wrong and what to do.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

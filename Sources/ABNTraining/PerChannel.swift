/// A per-channel setting written as one number (every channel) or a list (one per channel),
/// e.g. `mean: 0.286` or `mean: [0.485, 0.456, 0.406]`.
public struct PerChannel: Codable, Equatable, Sendable, ExpressibleByFloatLiteral, CustomStringConvertible {
    public var values: [Double]

    public init(_ values: [Double]) { self.values = values }
    public init(floatLiteral value: Double) { values = [value] }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let one = try? container.decode(Double.self) {
            values = [one]
        } else {
            values = try container.decode([Double].self)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        if values.count == 1 { try container.encode(values[0]) } else { try container.encode(values) }
    }

    /// One value per channel of `channels`; nil when the list has another length.
    public func expanded(to channels: Int) -> [Double]? {
        if values.count == 1 { return Array(repeating: values[0], count: channels) }
        return values.count == channels ? values : nil
    }

    /// "0.286" or "0.485,0.456,0.406".
    public var description: String { values.map { String($0) }.joined(separator: ",") }
}

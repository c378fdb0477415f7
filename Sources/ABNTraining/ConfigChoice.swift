import ABNLayers

/// A config value that names one of a fixed set (`model.arch`, `data.format`, `train.schedule`,
/// ...): read from its name, written as its name, and refused with the names it may take.
public protocol ConfigChoice: RawRepresentable, CaseIterable, Codable, Sendable, CustomStringConvertible where RawValue == String {}

extension ConfigChoice {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let name = try? container.decode(String.self), let value = Self(rawValue: name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "must be \(Self.names), got \(Self.describe(container))."))
        }
        self = value
    }

    /// The value `container` holds, for a message: 'name', the number 5, true.
    private static func describe(_ container: any SingleValueDecodingContainer) -> String {
        if let text = try? container.decode(String.self) { return "'\(text)'" }
        if let number = try? container.decode(Int.self) { return "the number \(number)" }
        if let number = try? container.decode(Double.self) { return "the number \(number)" }
        if let flag = try? container.decode(Bool.self) { return "\(flag)" }
        return "a list or a section"
    }

    public var description: String { rawValue }

    /// "a, b or c".
    public static var names: String {
        let all = allCases.map(\.rawValue)
        return all.count < 2 ? all.joined() : all.dropLast().joined(separator: ", ") + " or " + all.last!
    }
}

extension NormMode: ConfigChoice {}
extension ResNetDepth: ConfigChoice {}
extension Inference.Mode: ConfigChoice {}

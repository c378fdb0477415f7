import ABNLayers

/// A config value that names one of a fixed set (`model.arch`, `data.format`, `train.schedule`,
/// ...): read from its name, written as its name, and refused with the names it may take.
public protocol ConfigChoice: RawRepresentable, CaseIterable, Codable, Sendable, CustomStringConvertible where RawValue == String {}

extension ConfigChoice {
    public init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "must be \(Self.names), got '\(name)'."))
        }
        self = value
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

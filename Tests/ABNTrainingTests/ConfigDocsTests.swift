import ABNTraining
import Foundation
import Testing

/// docs/configs.md documents every config key in its tables, one key per row, the key in
/// backticks in the first cell: "| `train.lr` | number | `0.1` | ... |".
@Suite("Config documentation")
struct ConfigDocsTests {
    static let page = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/configs.md")

    /// The rows of docs/configs.md's key tables: the key (first cell) and its default (third
    /// cell, without backticks).
    static func documentedDefaults() throws -> [(key: String, value: String)] {
        let text = try String(contentsOf: page, encoding: .utf8)
        return text.split(separator: "\n").compactMap { line -> (String, String)? in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard line.hasPrefix("|"), cells.count > 4 else { return nil }
            let first = cells[1]
            guard first.hasPrefix("`"), first.hasSuffix("`"), first.count > 2 else { return nil }
            let key = String(first.dropFirst().dropLast())
            guard key.contains("."), !key.contains("/"), !key.contains(" ") else { return nil }
            return (key, cells[3].replacingOccurrences(of: "`", with: ""))
        }
    }

    /// The keys named in the first cell of docs/configs.md's key tables.
    static func documentedKeys() throws -> [String] { try documentedDefaults().map(\.key) }

    @Test("the config accepts keys")
    func keysAreExposed() {
        #expect(TrainingConfig.keys.count > 40)
        for key in ["model.arch", "data.generate.kind", "train.lr", "checkpoint.keep"] {
            #expect(TrainingConfig.keys.contains(key), "\(key) missing from TrainingConfig.keys")
        }
    }

    @Test("every key the config accepts is documented in docs/configs.md")
    func everyKeyDocumented() throws {
        let documented = Set(try Self.documentedKeys())
        let missing = TrainingConfig.keys.filter { !documented.contains($0) }
        #expect(missing.isEmpty, "docs/configs.md lacks a table row for: \(missing.joined(separator: ", "))")
    }

    @Test("every key docs/configs.md documents exists, once")
    func everyDocumentedKeyExists() throws {
        let documented = try Self.documentedKeys()
        let known = Set(TrainingConfig.keys)
        let unknown = documented.filter { !known.contains($0) }
        #expect(unknown.isEmpty, "docs/configs.md documents keys the config does not accept: \(unknown.joined(separator: ", "))")
        let repeated = Dictionary(grouping: documented, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        #expect(repeated.isEmpty, "docs/configs.md documents these keys more than once: \(repeated.joined(separator: ", "))")
    }

    @Test("each key's documented default is the config's default")
    func documentedDefaults() throws {
        for (key, value) in try Self.documentedDefaults() where TrainingConfig.keys.contains(key) {
            let config = try TrainingConfig.parse(yaml: "", overrides: ["\(key)=\(value)"])
            let isDefault = config == TrainingConfig()
            #expect(isDefault, "docs/configs.md gives \(key) the default \(value), which is not the config's")
        }
    }
}

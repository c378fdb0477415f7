import ABNTensor
import Foundation

/// Timings of matrix product shapes on this machine, kept across runs: one JSON file per
/// processor model, vector level and `OPENBLAS_CORETYPE`, in `ABN_CACHE_DIR` (default
/// `$XDG_CACHE_HOME/abn`, else `~/.cache/abn`).
public struct GEMMCache {
    public let path: String

    public static func forThisMachine() -> GEMMCache {
        let environment = ProcessInfo.processInfo.environment
        let directory = environment["ABN_CACHE_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : ($0 as NSString).appendingPathComponent("abn") }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache/abn")
        let key = [processorModel(), VectorLevel.current, environment["OPENBLAS_CORETYPE"] ?? "default"]
            .joined(separator: "-")
            .map { $0.isLetter || $0.isNumber || $0 == "-" ? String($0) : "_" }.joined()
        return GEMMCache(path: (directory as NSString).appendingPathComponent("gemm-\(key).json"))
    }

    /// The timings of `shapes` (with their counts): the cached ones, and the missing ones
    /// measured now (the most work first) and added to the cache, all under the cache's lock,
    /// so that a shape is timed once per machine, by whichever process needs it first.
    public func timings(for shapes: [GEMMShape: Int], say: (String) -> Void) -> [GEMMChoice.Timing] {
        locked {
            var timings = load()
            let known = Set(timings.map(\.shape))
            let missing = shapes.keys.filter { !known.contains($0) }.sorted { $0.flops * Double(shapes[$0]!) > $1.flops * Double(shapes[$1]!) }
            if !missing.isEmpty {
                say("abn: timing \(missing.count) matrix product shape(s) with OpenBLAS and oneDNN (cached in \(path))")
                timings += GEMMChoice.measure(missing)
                do {
                    try save(timings)
                } catch {
                    say("abn: could not write \(path) (\(error.localizedDescription)); the next run times these shapes again")
                }
            }
            return timings.filter { shapes[$0.shape] != nil }
        }
    }

    /// Runs `body` holding an exclusive lock on the cache (PATH.lock; without the lock when the
    /// lock file cannot be made, e.g. a read-only directory).
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = open(path + ".lock", O_CREAT | O_RDWR, 0o644)
        guard fd >= 0 else { return try body() }
        defer { close(fd) }  // closing releases the lock
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        return try body()
    }

    /// The cached timings; none when the file is missing or unreadable (it is only a cache).
    func load() -> [GEMMChoice.Timing] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return (try? Self.decode(text, source: path)) ?? []
    }

    func save(_ timings: [GEMMChoice.Timing]) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Self.encode(timings).write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func encode(_ timings: [GEMMChoice.Timing]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(timings), as: UTF8.self)
    }

    static func decode(_ text: String, source: String) throws -> [GEMMChoice.Timing] {
        do {
            return try JSONDecoder().decode([GEMMChoice.Timing].self, from: Data(text.utf8))
        } catch {
            throw TrainingError("\(source) is not a list of GEMM timings (\(error)); delete it to time the products again.")
        }
    }

    /// The processor's model name (/proc/cpuinfo), or "unknown".
    private static func processorModel() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let name = line.split(separator: ":", maxSplits: 1).last else { return "unknown" }
        return name.trimmingCharacters(in: .whitespaces)
    }
}

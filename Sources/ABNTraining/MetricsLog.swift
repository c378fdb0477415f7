import Foundation

/// DIR/metrics.jsonl (one JSON object per line) and DIR/config.yaml (the resolved config).
final class MetricsLog {
    private let handle: FileHandle

    /// Opens the log of a run that continues after `step` (0: a new run): lines of later steps,
    /// written by the run before it was interrupted, are dropped, so that no step appears twice.
    init(runDirectory: String, config: TrainingConfig, continuingAfter step: Int) throws {
        do {
            try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("cannot create the run directory \(runDirectory): \(error.localizedDescription)")
        }
        try config.yaml().write(toFile: (runDirectory as NSString).appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
        let path = (runDirectory as NSString).appendingPathComponent("metrics.jsonl")
        let kept = (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: "\n").filter { line in
            let logged = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["step"] as? Int
            return step > 0 && (logged ?? Int.max) <= step
        } ?? []
        do {
            try Data(kept.map { $0 + "\n" }.joined().utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TrainingError("cannot write \(path): \(error.localizedDescription); check that the run directory is writable.")
        }
        guard let handle = FileHandle(forWritingAtPath: path) else { throw TrainingError("cannot open \(path) for writing.") }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    func append(_ object: [String: Any]) throws {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        data.append(0x0A)
        handle.write(data)
    }
}

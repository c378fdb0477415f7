import Foundation

/// The checkpoints of a run: `DIR/checkpoints/step-NNNNNNNN.safetensors`, written by rank 0
/// atomically (temporary file, fsync, rename, fsync of the directory), newest `keep` kept.
public struct CheckpointDirectory {
    public let path: String

    public init(runDirectory: String) {
        path = (runDirectory as NSString).appendingPathComponent("checkpoints")
    }

    public func file(step: Int) -> String {
        (path as NSString).appendingPathComponent(String(format: "step-%08d.safetensors", step))
    }

    /// Checkpoint files, newest (highest step) first.
    public func list() -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), name.hasSuffix(".safetensors"),
                  let step = Int(name.dropFirst(5).dropLast(12)) else { return nil }
            return (step, (path as NSString).appendingPathComponent(name))
        }.sorted { $0.0 > $1.0 }
    }

    /// Removes the temporary files of writes that an ended run left unfinished; returns their names.
    @discardableResult
    public func removeStaleTemporaries() -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasPrefix("step-") && $0.hasSuffix(".tmp") }
        for name in names { try? FileManager.default.removeItem(atPath: (path as NSString).appendingPathComponent(name)) }
        return names
    }

    /// Writes `data` as the checkpoint of `step` and deletes all but the newest `keep`.
    public func write(_ data: Data, step: Int, keep: Int) throws {
        if !FileManager.default.fileExists(atPath: path) {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            try syncDirectory((path as NSString).deletingLastPathComponent)  // the new directory's entry
        }
        let final = file(step: step)
        let temporary = final + ".tmp"
        try writeDurably(data, to: temporary)
        guard rename(temporary, final) == 0 else {
            throw TrainingError("cannot rename \(temporary) to \(final): \(String(cString: strerror(errno))).")
        }
        try syncDirectory(path)
        for old in list().dropFirst(keep) { try? FileManager.default.removeItem(atPath: old.path) }
    }

    /// The newest checkpoint that reads and checks cleanly; the ones skipped, with why.
    public func newestValid() -> (checkpoint: Checkpoint?, skipped: [String]) {
        var skipped: [String] = []
        for entry in list() {
            do { return (try Checkpoint(path: entry.path), skipped) } catch { skipped.append("\(error)") }
        }
        return (nil, skipped)
    }
}

/// Writes `data` to `path` and fsyncs it before returning.
func writeDurably(_ data: Data, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw TrainingError("cannot create \(path): \(String(cString: strerror(errno))). Check that the run directory is writable.") }
    defer { close(fd) }
    try data.withUnsafeBytes { raw in
        var written = 0
        while written < raw.count {
            let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
            guard n > 0 else { throw TrainingError("cannot write \(path): \(String(cString: strerror(errno))) (is the disk full?).") }
            written += n
        }
    }
    guard fsync(fd) == 0 else { throw TrainingError("cannot sync \(path) to disk: \(String(cString: strerror(errno))).") }
}

/// fsync of a directory, so that a rename in it survives a crash.
func syncDirectory(_ path: String) throws {
    let fd = open(path.isEmpty ? "." : path, O_RDONLY | O_DIRECTORY)
    guard fd >= 0 else { throw TrainingError("cannot open the directory \(path) to sync it: \(String(cString: strerror(errno))).") }
    defer { close(fd) }
    guard fsync(fd) == 0 else { throw TrainingError("cannot sync the directory \(path) to disk: \(String(cString: strerror(errno))).") }
}

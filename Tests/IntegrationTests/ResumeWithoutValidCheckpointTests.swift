import Foundation
import Testing

/// `abn train --resume` in a run directory whose checkpoints are all corrupt: refused, naming
/// them and how to start afresh, and the files are left as they were; with no checkpoint at
/// all it starts from step 0.
@Suite("Resume without a valid checkpoint", .serialized)
struct ResumeWithoutValidCheckpointTests {
    let common = ["train", "--config", "configs/tiny.yaml", "--max-steps", "8", "--set", "checkpoint.every=4", "--set", "checkpoint.keep=2"]

    /// A run directory holding the checkpoints of steps 4 and 8, each cut to half its length.
    private func corruptRun(_ name: String) throws -> (dir: String, files: [String: Data]) {
        let dir = runDirectory(name)
        let first = try BinaryRunner.run(common + ["--run-dir", dir])
        try #require(first.status == 0, "stderr: \(first.stderr)")
        var files: [String: Data] = [:]
        for step in [4, 8] {
            let path = dir + String(format: "/checkpoints/step-%08d.safetensors", step)
            let data = try #require(FileManager.default.contents(atPath: path))
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
            files[path] = data.prefix(data.count / 2)
        }
        return (dir, files)
    }

    @Test("alone and on 2 ranks: refused with the files named and how to start afresh, the files untouched",
          arguments: [nil, 2] as [Int?])
    func refused(ranks: Int?) throws {
        let (dir, files) = try corruptRun("all-corrupt-\(ranks ?? 1)")
        let linesBefore = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        let output = try BinaryRunner.run(common + ["--run-dir", dir, "--resume"], ranks: ranks)
        #expect(output.status != 0, "stdout: \(output.stdout)")
        #expect(!output.stdout.contains("starting from step 0") && !output.stdout.contains("step 4/8"), "stdout: \(output.stdout)")
        for path in files.keys { #expect(output.stderr.contains(path), "stderr: \(output.stderr)") }
        #expect(output.stderr.contains("none is valid") && output.stderr.contains("--run-dir"), "stderr: \(output.stderr)")
        for (path, data) in files { #expect(FileManager.default.contents(atPath: path) == data, "\(path) changed") }
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/checkpoints").sorted()
        #expect(names == ["step-00000004.safetensors", "step-00000008.safetensors"])
        #expect(try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8) == linesBefore)
    }

    @Test("with no checkpoint at all, --resume starts from step 0")
    func noCheckpointStartsAfresh() throws {
        let dir = runDirectory("no-checkpoint")
        let output = try BinaryRunner.run(common + ["--run-dir", dir, "--resume"])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(output.stdout.contains("found no checkpoint") && output.stdout.contains("starting from step 0"), "stdout: \(output.stdout)")
        #expect(FileManager.default.fileExists(atPath: dir + "/checkpoints/step-00000008.safetensors"))
    }
}

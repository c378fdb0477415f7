import ABNTestSupport
import Foundation
import Testing

/// `abn train` and `abn eval` on configs/tiny.yaml, through the launch scripts and the binary.
@Suite("Training runs", .serialized)
struct TrainingRunTests {
    @Test("12 steps with a global batch of 31 on 3 ranks log the losses of one process, within the measured noise floor; unsynchronized do not")
    func sameLossesAcrossWorldSizes() throws {
        let common = ["--max-steps", "12", "--set", "train.global_batch=31", "--set", "train.log_every=1", "--set", "train.evaluate=false"]
        let yardstick = try LossYardstick.measure("configs/tiny.yaml", common, name: "tiny")
        let three = runDirectory("three"), control = runDirectory("three-unsynced")
        let b = try BinaryRunner.script("launch/train.sh", ["-n", "3", "configs/tiny.yaml", "--run-dir", three] + common)
        #expect(b.status == 0, "stderr: \(b.stderr)")
        let c = try BinaryRunner.script("launch/train.sh", ["-n", "3", "configs/tiny.yaml", "--run-dir", control, "--set", "model.sync=false"] + common)
        #expect(c.status == 0, "stderr: \(c.stderr)")
        #expect(b.stdout.contains("3 rank(s)"), "stdout: \(b.stdout)")
        yardstick.expectMatch(try losses(three), control: try losses(control))
        #expect(yardstick.reference.last! < yardstick.reference.first!, "the loss did not fall in 12 steps: \(yardstick.reference)")
    }

    @Test("K steps, resume, K steps give a checkpoint bit-identical to 2K steps in one run")
    func exactResume() throws {
        let straight = runDirectory("straight"), resumed = runDirectory("resumed")
        let common = ["train", "--config", "configs/tiny.yaml", "--max-steps", "12", "--set", "checkpoint.every=0"]
        #expect(try BinaryRunner.run(common + ["--run-dir", straight]).status == 0)
        #expect(try BinaryRunner.run(common + ["--run-dir", resumed, "--stop-after-step", "6"]).status == 0)
        #expect(FileManager.default.fileExists(atPath: resumed + "/checkpoints/step-00000006.safetensors"))
        let second = try BinaryRunner.run(common + ["--run-dir", resumed, "--resume"])
        #expect(second.stdout.contains("resuming from") && second.stdout.contains("step 6"), "stdout: \(second.stdout)")
        let a = FileManager.default.contents(atPath: straight + "/checkpoints/step-00000012.safetensors")
        let b = FileManager.default.contents(atPath: resumed + "/checkpoints/step-00000012.safetensors")
        try #require(a != nil && b != nil)
        #expect(a == b, "the resumed run's checkpoint differs from the uninterrupted run's")
    }

    @Test("resume on another world size continues from the newest valid checkpoint, skipping a corrupt one")
    func resumeElsewhere() throws {
        let dir = runDirectory("elsewhere")
        let common = ["train", "--config", "configs/tiny.yaml", "--max-steps", "10", "--set", "checkpoint.every=4", "--set", "checkpoint.keep=3"]
        #expect(try BinaryRunner.run(common + ["--run-dir", dir, "--stop-after-step", "8"]).status == 0)
        // break the newest checkpoint: resume must fall back to step 4 and keep the files
        let newest = dir + "/checkpoints/step-00000008.safetensors"
        let data = try #require(FileManager.default.contents(atPath: newest))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: newest))
        let output = try BinaryRunner.run(common + ["--run-dir", dir, "--resume"], ranks: 2)
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(output.stdout.contains("skipping a checkpoint") && output.stdout.contains("step 4"), "stdout: \(output.stdout)")
        #expect(FileManager.default.fileExists(atPath: dir + "/checkpoints/step-00000010.safetensors"))
        #expect(FileManager.default.fileExists(atPath: newest), "the corrupt checkpoint was removed")
    }

    @Test("abn eval agrees alone and on 2 ranks, and refuses a truncated checkpoint with a message")
    func evalChecks() throws {
        let dir = runDirectory("eval")
        #expect(try BinaryRunner.run(["train", "--config", "configs/tiny.yaml", "--max-steps", "8", "--run-dir", dir]).status == 0)
        let file = dir + "/checkpoints/step-00000008.safetensors"
        let alone = try BinaryRunner.run(["eval", "--checkpoint", file, "--json"])
        let two = try BinaryRunner.run(["eval", "--checkpoint", file, "--json"], ranks: 2)
        let a = try #require(alone.jsonLines.first?["test_accuracy"] as? Double, "stderr: \(alone.stderr)")
        let b = try #require(two.jsonLines.first?["test_accuracy"] as? Double, "stderr: \(two.stderr)")
        #expect(a == b)
        let truncated = dir + "/truncated.safetensors"
        try FileManager.default.contents(atPath: file)!.prefix(1000).write(to: URL(fileURLWithPath: truncated))
        let refused = try BinaryRunner.run(["eval", "--checkpoint", truncated])
        #expect((1...127).contains(refused.status), "exit status \(refused.status)")
        #expect(refused.stderr.contains("truncated or corrupt"), "stderr: \(refused.stderr)")
    }

    @Test("only rank 0 reads the config: other ranks given a missing file still train, with rank 0's --set applied")
    func configReadOnce() throws {
        let dir = runDirectory("once")
        let binary = BinaryRunner.binary
        let output = try BinaryRunner.mpirun(
            ["-n", "1", binary, "train", "--config", "configs/tiny.yaml", "--max-steps", "3", "--set", "train.global_batch=17", "--run-dir", dir,
             ":", "-n", "2", binary, "train", "--config", "/nonexistent/config.yaml", "--max-steps", "3", "--run-dir", dir])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(output.stdout.contains("3 rank(s)") && output.stdout.contains("global batch 17"), "stdout: \(output.stdout)")
        // the control: a rank 0 without the file ends the job with the path in the message
        let missing = try BinaryRunner.run(["train", "--config", "/nonexistent/config.yaml", "--run-dir", dir], ranks: 2)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("/nonexistent/config.yaml"), "stderr: \(missing.stderr)")
    }

    @Test("a fresh run in a used run directory is refused, naming both ways on; its checkpoints stay")
    func usedRunDirectory() throws {
        let dir = runDirectory("used")
        let common = ["train", "--config", "configs/tiny.yaml", "--max-steps", "8", "--run-dir", dir, "--set", "train.evaluate=false"]
        #expect(try BinaryRunner.run(common).status == 0)
        let again = try BinaryRunner.run(common, ranks: 2)
        #expect(again.status != 0)
        #expect(again.stderr.contains("--resume") && again.stderr.contains("--run-dir"), "stderr: \(again.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/checkpoints/step-00000008.safetensors"))
    }

    @Test("resume drops the metrics logged after its checkpoint (no step twice) and removes stale temporary files")
    func resumeKeepsMetricsClean() throws {
        let dir = runDirectory("metrics")
        let common = ["train", "--config", "configs/tiny.yaml", "--max-steps", "12", "--run-dir", dir, "--set", "checkpoint.every=4",
                      "--set", "checkpoint.keep=3", "--set", "train.log_every=1", "--set", "train.evaluate=false"]
        #expect(try BinaryRunner.run(common + ["--stop-after-step", "10"]).status == 0)
        // as if killed after step 10 was logged but before its checkpoint was complete
        try FileManager.default.removeItem(atPath: dir + "/checkpoints/step-00000010.safetensors")
        try Data("partial".utf8).write(to: URL(fileURLWithPath: dir + "/checkpoints/step-00000010.safetensors.tmp"))
        let resumed = try BinaryRunner.run(common + ["--resume"])
        #expect(resumed.status == 0, "stderr: \(resumed.stderr)")
        #expect(resumed.stdout.contains("step 8") && resumed.stdout.contains("removed step-00000010.safetensors.tmp"), "stdout: \(resumed.stdout)")
        let steps = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["step"] as? Int
        }
        #expect(steps == Array(1...12), "logged steps \(steps)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/checkpoints/step-00000010.safetensors.tmp"))
    }

    @Test("without synchronized statistics, the epoch-end evaluation uses rank 0's running statistics, as abn eval of the checkpoint does")
    func unsynchronizedEvaluation() throws {
        let dir = runDirectory("unsynced")
        let run = try BinaryRunner.run(["train", "--config", "configs/tiny.yaml", "--max-steps", "8", "--run-dir", dir, "--set", "model.sync=false"], ranks: 2)
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let logged = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["test_loss"] as? Double
        }
        let eval = try BinaryRunner.run(["eval", "--checkpoint", dir + "/checkpoints/step-00000008.safetensors", "--json"])
        let loss = try #require(eval.jsonLines.first?["test_loss"] as? Double, "stderr: \(eval.stderr)")
        let trained = try #require(logged.last, "no evaluation in the metrics")
        #expect(abs(trained - loss) <= 1e-6 * loss, "epoch-end test loss \(trained), abn eval \(loss)")
    }

    @Test("ABN_LOWERING forces a lowering where it applies, and training with it keeps its losses")
    func forcedLowering() throws {
        let bench = ["bench", "kernels", "--only", "stage2.*.conv2", "--repeats", "1", "--batch", "4", "--peak-size", "256", "--json"]
        let automatic = try BinaryRunner.run(bench)
        let forced = try BinaryRunner.run(bench, environment: ["ABN_LOWERING": "64->64 3x3=im2col"])
        #expect(Set(automatic.jsonLines.compactMap { $0["lowering"] as? String }) == ["winograd"], "stdout: \(automatic.stdout)")
        #expect(Set(forced.jsonLines.compactMap { $0["lowering"] as? String }) == ["im2col"], "stdout: \(forced.stdout) stderr: \(forced.stderr)")
        // two algorithms round differently: im2col's run is judged against the measured floor
        let common = ["--max-steps", "6", "--set", "train.log_every=1", "--set", "train.evaluate=false"]
        let yardstick = try LossYardstick.measure("configs/tiny.yaml", common, name: "lowering")
        let im2col = runDirectory("lowering-im2col"), control = runDirectory("lowering-unsynced")
        #expect(try BinaryRunner.run(["train", "--config", "configs/tiny.yaml", "--run-dir", im2col] + common, environment: ["ABN_LOWERING": "im2col"]).status == 0)
        #expect(try BinaryRunner.run(["train", "--config", "configs/tiny.yaml", "--run-dir", control, "--set", "model.sync=false"] + common, ranks: 2).status == 0)
        yardstick.expectMatch(try losses(im2col), control: try losses(control))
    }

    @Test("train.gemm auto times the first step's products once per machine, runs repeat bit for bit, and the library matters")
    func gemmChoice() throws {
        let environment = ["ABN_CACHE_DIR": runDirectory("gemm-cache")]  // a machine cache of this test's own
        let common = ["train", "--config", "configs/tiny.yaml", "--max-steps", "6", "--set", "train.evaluate=false", "--set", "train.gemm=auto"]
        let first = runDirectory("gemm-first"), second = runDirectory("gemm-second")
        let a = try BinaryRunner.run(common + ["--run-dir", first], environment: environment)
        #expect(a.status == 0 && a.stdout.contains("timing") && a.stdout.contains("matrix products:"), "stdout: \(a.stdout) stderr: \(a.stderr)")
        let b = try BinaryRunner.run(common + ["--run-dir", second], environment: environment)
        #expect(b.status == 0 && !b.stdout.contains("timing") && b.stdout.contains("matrix products:"), "stdout: \(b.stdout) stderr: \(b.stderr)")
        let file = "/checkpoints/step-00000006.safetensors"
        let choices = try [first, second].map { try String(contentsOfFile: $0 + "/gemm.json", encoding: .utf8) }
        #expect(choices[0] == choices[1] && choices[0].contains("\"gflops\""), "\(choices)")
        #expect(FileManager.default.contents(atPath: first + file) == FileManager.default.contents(atPath: second + file),
                "two runs with the same cached choices differ")
        // the control: each library alone; their checkpoints differ in the last bits
        let openblas = runDirectory("gemm-openblas"), onednn = runDirectory("gemm-onednn")
        #expect(try BinaryRunner.run(common + ["--run-dir", openblas, "--set", "train.gemm=openblas"]).status == 0)
        #expect(try BinaryRunner.run(common + ["--run-dir", onednn, "--set", "train.gemm=onednn"]).status == 0)
        let x = try #require(FileManager.default.contents(atPath: openblas + file)), y = try #require(FileManager.default.contents(atPath: onednn + file))
        #expect(x != y, "OpenBLAS and oneDNN gave bit-identical training: the library setting had no effect")
    }

    @Test("a config error names the key and exits with 1")
    func configError() throws {
        let output = try BinaryRunner.run(["train", "--config", "configs/tiny.yaml", "--set", "train.lr=-1", "--run-dir", runDirectory("bad")])
        #expect(output.status == 1)
        #expect(output.stderr.contains("train.lr"), "stderr: \(output.stderr)")
    }
}

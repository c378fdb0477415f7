import Foundation
import Testing

/// Faults and interruptions: stop signals, a stalled rank, a killed rank, a changed config on resume.
@Suite("Faults and interruptions", .serialized)
struct FaultTests {
    /// Settings of a tiny run long enough to be interrupted (32 steps per epoch).
    static let long = ["--set", "train.epochs=1000", "--set", "train.log_every=1", "--set", "train.evaluate=false", "--set", "checkpoint.every=0"]

    @Test("a stop signal ends every rank after the same step with a checkpoint and code 75; resuming is bit-identical")
    func stopAndResume() throws {
        let stopped = runDirectory("stopped"), straight = runDirectory("straight-stop")
        let job = try BinaryRunner.startScript("launch/train.sh", ["-n", "2", "configs/tiny.yaml", "--run-dir", stopped] + Self.long)
        let started = waitUntil(seconds: 120) { loggedStep(stopped) >= 10 }
        kill(job.pid, SIGTERM)
        let output = job.finish()
        try #require(started, "the run logged no 10 steps; stderr: \(output.stderr)")
        #expect(output.status == 75, "exit status \(output.status); stderr: \(output.stderr)")
        #expect(output.stdout.contains("stopped by") && output.stdout.contains("--resume"), "stdout: \(output.stdout)")
        let step = try Self.checkpointStep(stopped)
        #expect(step >= 10 && step < 32_000)
        try Self.expectExactResume(stopped, step: step, reference: straight)
    }

    @Test("a stopped rank ends the job within the collective limit, naming the collective, the step and the silent rank")
    func stalledRank() throws {
        let dir = runDirectory("stalled")
        let job = try BinaryRunner.startScript("launch/train.sh", ["-n", "3", "configs/tiny.yaml", "--run-dir", dir, "--set", "train.collective_timeout_s=2", "--set", "train.gemm=openblas"] + Self.long)
        var stalled: Int32 = 0
        defer { if stalled > 0 { kill(stalled, SIGCONT); kill(stalled, SIGKILL) } }
        let started = waitUntil(seconds: 120) { loggedStep(dir) >= 5 && rankProcesses(matching: dir).count == 3 }
        if started {
            stalled = rankProcesses(matching: dir)[2]!
            kill(stalled, SIGSTOP)
        }
        let t0 = Date()
        let output = job.finish()
        try #require(started, "the run did not start; stderr: \(output.stderr)")
        #expect(Date().timeIntervalSince(t0) < 60, "the job took \(Date().timeIntervalSince(t0)) s to end")
        #expect(output.status == 124, "exit status \(output.status); stderr: \(output.stderr)")
        #expect(output.stderr.contains("no answer from rank(s) 2") && output.stderr.contains("at step")
                && output.stderr.contains("train.collective_timeout_s"), "stderr: \(output.stderr)")
    }

    @Test("a killed rank ends the whole job promptly, and the checkpoints left read")
    func killedRank() throws {
        let dir = runDirectory("killed")
        let job = try BinaryRunner.startScript("launch/train.sh", ["-n", "3", "configs/tiny.yaml", "--run-dir", dir] + Self.long.dropLast(2) + ["--set", "checkpoint.every=3"])
        let started = waitUntil(seconds: 120) { loggedStep(dir) >= 7 && rankProcesses(matching: dir).count == 3 }
        if started, let victim = rankProcesses(matching: dir)[1] { kill(victim, SIGKILL) }
        let t0 = Date()
        let output = job.finish()
        try #require(started, "the run did not start; stderr: \(output.stderr)")
        #expect(Date().timeIntervalSince(t0) < 30 && output.status != 0, "status \(output.status) after \(Date().timeIntervalSince(t0)) s")
        let resumed = try BinaryRunner.run(["train", "--config", "configs/tiny.yaml", "--run-dir", dir, "--resume", "--stop-after-step", String(loggedStep(dir) + 1)]
                                           + Self.long.dropLast(2) + ["--set", "checkpoint.every=3"])
        #expect(resumed.status == 0 && resumed.stdout.contains("resuming from"), "stdout: \(resumed.stdout) stderr: \(resumed.stderr)")
        #expect(!resumed.stdout.contains("skipping"), "a checkpoint was unreadable: \(resumed.stdout)")
    }

    @Test("resume refuses a config that changes the run, naming the change, unless --allow-config-change")
    func changedConfig() throws {
        let dir = runDirectory("changed")
        let common = ["train", "--config", "configs/tiny.yaml", "--max-steps", "12", "--run-dir", dir, "--set", "train.evaluate=false"]
        #expect(try BinaryRunner.run(common + ["--stop-after-step", "8"]).status == 0)
        let refused = try BinaryRunner.run(common + ["--resume", "--set", "train.lr=0.2"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("train.lr: 0.05 -> 0.2") && refused.stderr.contains("--allow-config-change"), "stderr: \(refused.stderr)")
        let logging = try BinaryRunner.run(common + ["--resume", "--stop-after-step", "9", "--set", "train.log_every=1"])
        #expect(logging.status == 0, "a logging change was refused: \(logging.stderr)")
        let allowed = try BinaryRunner.run(common + ["--resume", "--set", "train.lr=0.2", "--allow-config-change"])
        #expect(allowed.status == 0 && allowed.stdout.contains("continuing with a changed config"), "stdout: \(allowed.stdout) stderr: \(allowed.stderr)")
    }
}

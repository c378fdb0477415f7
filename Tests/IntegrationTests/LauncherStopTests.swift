import Foundation
import Testing

/// The fault suite's tests of a job of launch/train.sh that loses its terminal, is ended by a
/// batch system, is signalled while it starts, or loses its launch script: no process
/// outlives the stop, the checkpoint resumes bit-identically, the script exits 75.
extension FaultTests {
    /// Seconds every process of a stopped job gets to end. A step and checkpoint of
    /// configs/tiny.yaml take milliseconds and mpirun's teardown a few seconds, on a machine
    /// that may be shared; an orphaned job would go on training for minutes.
    static let endLimit = 30.0

    /// `launch/train.sh -n 2 configs/tiny.yaml` into `dir`, run by `wrapper` (through env) as the
    /// leader of a session that a new pseudo-terminal controls; whether it reached step 10 on 2
    /// ranks within 2 minutes.
    static func trainInTerminal(_ wrapper: [String], dir: String) throws -> (job: BinaryRunner.Running, terminal: Terminal, started: Bool) {
        let terminal = try Terminal()
        let job = try BinaryRunner.start("/usr/bin/env", wrapper + ["launch/train.sh", "-n", "2", "configs/tiny.yaml", "--run-dir", dir] + long,
                                         environment: [:], input: terminal.slave)
        try terminal.slave.close()
        let started = waitUntil(seconds: 120) { loggedStep(dir) >= 10 && rankProcesses(matching: dir).count == 2 }
        return (job, terminal, started)
    }

    @Test("closing the terminal of launch/train.sh stops every process of the job with a checkpoint and code 75; resuming is bit-identical")
    func terminalHangUp() throws {
        try Self.requireSessionTools()
        let dir = runDirectory("hang-up"), straight = runDirectory("straight-hang-up")
        defer { for pid in jobProcesses(matching: dir) { kill(pid, SIGKILL) } }
        // SIGHUP at its default action whatever the test runner's (under nohup it would be
        // ignored, and rightly kept so)
        let (job, terminal, started) = try Self.trainInTerminal(["--default-signal=HUP", "setsid", "--ctty", "--wait", "/bin/bash"], dir: dir)
        let processes = jobProcesses(matching: dir)
        terminal.hangUp()
        let ended = waitUntil(seconds: Self.endLimit) { jobProcesses(matching: dir).isEmpty }
        let output = job.finish()
        try #require(started, "the run did not start; stderr: \(output.stderr)")
        #expect(processes.count >= 4, "the script, mpirun and 2 ranks should be running: \(processes)")
        #expect(ended, "still running \(Self.endLimit) s after the hang-up: \(jobProcesses(matching: dir)) of \(processes)")
        #expect(output.status == 75, "exit status \(output.status); stderr: \(output.stderr)")
        #expect(output.stdout.contains("stopped by SIGHUP to launch/train.sh") && output.stdout.contains("--resume"), "stdout: \(output.stdout)")
        try Self.expectExactResume(dir, step: try Self.checkpointStep(dir), reference: straight)
    }

    @Test("under nohup, closing the terminal leaves the job running; SIGTERM then stops it with a checkpoint and code 75")
    func hangUpUnderNohup() throws {
        try Self.requireSessionTools()
        let dir = runDirectory("nohup")
        defer { for pid in jobProcesses(matching: dir) { kill(pid, SIGKILL) } }
        let (job, terminal, started) = try Self.trainInTerminal(["setsid", "--ctty", "--wait", "nohup", "/bin/bash"], dir: dir)
        terminal.hangUp()
        let before = loggedStep(dir)
        let trainsOn = waitUntil(seconds: Self.endLimit) { loggedStep(dir) > before + 100 }
        let script = jobProcesses(matching: dir).first { processCommand($0).hasPrefix("/bin/bash launch/train.sh") }
        if let script { kill(script, SIGTERM) }
        let ended = waitUntil(seconds: Self.endLimit) { jobProcesses(matching: dir).isEmpty }
        let output = job.finish()
        try #require(started, "the run did not start; stderr: \(output.stderr)")
        #expect(trainsOn, "the job stopped training after the hang-up (step \(before) then \(loggedStep(dir))); stderr: \(output.stderr)")
        #expect(output.stderr.contains("SIGHUP is ignored"), "stderr: \(output.stderr)")
        #expect(script != nil && ended, "the script was not found, or the job still runs: \(jobProcesses(matching: dir))")
        #expect(output.status == 75, "exit status \(output.status); stderr: \(output.stderr)")
        #expect(output.stdout.contains("stopped by SIGTERM to launch/train.sh"), "stdout: \(output.stdout)")
        #expect(try Self.checkpointStep(dir) > before)
    }

    @Test("SIGTERM to the script, mpirun and every rank at once (a batch system's time limit): a checkpoint, the resume line, code 75; resuming is bit-identical")
    func signalToEveryProcess() throws {
        let dir = runDirectory("batch-end"), straight = runDirectory("straight-batch-end")
        defer { for pid in jobProcesses(matching: dir) { kill(pid, SIGKILL) } }
        let job = try BinaryRunner.startScript("launch/train.sh", ["-n", "2", "configs/tiny.yaml", "--run-dir", dir] + Self.long)
        let started = waitUntil(seconds: 120) { loggedStep(dir) >= 10 && rankProcesses(matching: dir).count == 2 }
        let processes = jobProcesses(matching: dir)
        if started { for pid in processes { kill(pid, SIGTERM) } }
        let ended = waitUntil(seconds: Self.endLimit) { jobProcesses(matching: dir).isEmpty }
        let output = job.finish()
        try #require(started, "the run did not start; stderr: \(output.stderr)")
        #expect(processes.count == 4, "the script, mpirun and 2 ranks should have been signalled: \(processes)")
        #expect(ended, "still running \(Self.endLimit) s after the signal: \(jobProcesses(matching: dir)) of \(processes)")
        #expect(output.status == 75, "exit status \(output.status); stderr: \(output.stderr)")
        #expect(output.stdout.contains("stopped by") && output.stdout.contains("--resume"), "stdout: \(output.stdout)")
        try Self.expectExactResume(dir, step: try Self.checkpointStep(dir), reference: straight)
    }

    @Test("SIGTERM to every process during start-up ends the job with code 75 and a sentence saying there was nothing to save")
    func signalDuringStartUp() throws {
        let dir = runDirectory("start-up"), scenes = runDirectory("start-up-scenes")
        defer { for pid in jobProcesses(matching: dir) { kill(pid, SIGKILL) } }
        // rank 0 makes the data set before the first step, for a second or more, in a staging
        // folder beside it: the signal comes while that folder exists
        let job = try BinaryRunner.startScript("launch/train.sh", ["-n", "2", "configs/tiny-seg.yaml", "--run-dir", dir, "--set", "data.root=\(scenes)",
                                                                   "--set", "data.generate.train=600", "--set", "data.generate.test=8"])
        let folder = (scenes as NSString).deletingLastPathComponent, staging = (scenes as NSString).lastPathComponent + ".partial-"
        let starting = waitUntil(seconds: 120) {
            ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).contains { $0.hasPrefix(staging) } && rankProcesses(matching: dir).count == 2
        }
        let processes = jobProcesses(matching: dir)
        if starting { for pid in processes { kill(pid, SIGTERM) } }
        let ended = waitUntil(seconds: Self.endLimit) { jobProcesses(matching: dir).isEmpty }
        let output = job.finish()
        try #require(starting, "the run did not start making its data set; stderr: \(output.stderr)")
        #expect(processes.count == 4, "the script, mpirun and 2 ranks should have been signalled: \(processes)")
        #expect(ended, "still running \(Self.endLimit) s after the signal: \(jobProcesses(matching: dir)) of \(processes)")
        #expect(output.status == 75, "exit status \(output.status); stderr: \(output.stderr)")
        #expect(output.stdout.contains("during start-up") && output.stdout.contains("nothing to save") && output.stdout.contains("--resume"),
                "stdout: \(output.stdout)")
        #expect(loggedStep(dir) == 0 && ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/checkpoints")) ?? []).isEmpty,
                "a step ran or a checkpoint was written")
    }

    @Test("a launch script killed by SIGKILL stops its ranks after their step with a checkpoint, leaving no file of its own; resuming is bit-identical")
    func launcherKilled() throws {
        let dir = runDirectory("launcher-killed"), straight = runDirectory("straight-launcher-killed")
        defer { for pid in jobProcesses(matching: dir) { kill(pid, SIGKILL) } }
        let job = try BinaryRunner.startScript("launch/train.sh", ["-n", "2", "configs/tiny.yaml", "--run-dir", dir] + Self.long)
        let started = waitUntil(seconds: 120) { loggedStep(dir) >= 10 && rankProcesses(matching: dir).count == 2 }
        let launcherDirectory = rankProcesses(matching: dir)[0].flatMap { processEnvironment($0)["ABN_LAUNCHER_DIR"] }
        if started { kill(job.pid, SIGKILL) }
        let ended = waitUntil(seconds: Self.endLimit) { jobProcesses(matching: dir).isEmpty }
        let output = job.finish()
        try #require(started, "the run did not start; stderr: \(output.stderr)")
        #expect(ended, "still running \(Self.endLimit) s after the script died: \(jobProcesses(matching: dir))")
        #expect(output.stdout.contains("stopped by the end of launch/train.sh") && output.stdout.contains("--resume"), "stdout: \(output.stdout)")
        let launcher = try #require(launcherDirectory, "rank 0 has no ABN_LAUNCHER_DIR")
        #expect(!FileManager.default.fileExists(atPath: launcher), "the script's directory \(launcher) was left behind")
        try Self.expectExactResume(dir, step: try Self.checkpointStep(dir), reference: straight)
    }

    /// The step of the one checkpoint in DIR.
    static func checkpointStep(_ dir: String) throws -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/checkpoints")) ?? []
        try #require(names.count == 1, "checkpoints in \(dir): \(names)")
        return try #require(Int(names[0].dropFirst(5).prefix(8)), "checkpoint name \(names[0])")
    }

    /// Resuming DIR's checkpoint at `step` for 5 steps on 2 ranks gives a checkpoint
    /// bit-identical to that of a run without interruption in the directory `reference`.
    static func expectExactResume(_ dir: String, step: Int, reference: String) throws {
        let end = String(step + 5)
        let resumed = try BinaryRunner.script("launch/train.sh", ["-n", "2", "configs/tiny.yaml", "--run-dir", dir, "--resume", "--stop-after-step", end] + long)
        #expect(resumed.status == 0, "stderr: \(resumed.stderr)")
        let straight = try BinaryRunner.script("launch/train.sh", ["-n", "2", "configs/tiny.yaml", "--run-dir", reference, "--stop-after-step", end] + long)
        #expect(straight.status == 0, "stderr: \(straight.stderr)")
        let file = String(format: "/checkpoints/step-%08d.safetensors", step + 5)
        let a = try #require(FileManager.default.contents(atPath: dir + file)), b = try #require(FileManager.default.contents(atPath: reference + file))
        #expect(a == b, "the stopped and resumed run differs from the uninterrupted one")
    }

    /// Cancels the test, as skipped, without `setsid --ctty` (util-linux) or `env --default-signal` (coreutils 8.31).
    static func requireSessionTools() throws {
        let setsid = try? BinaryRunner.command("/usr/bin/env", ["--default-signal=HUP", "setsid", "--help"], environment: [:])
        if setsid?.status != 0 || !(setsid?.stdout.contains("--ctty") ?? false) {
            try Test.cancel("skipped: needs setsid with --ctty (util-linux) and env --default-signal (coreutils 8.31 or later)")
        }
    }
}

import ABNData
import ABNTensor
import ABNTraining
import ArgumentParser
import Foundation

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a network from a YAML config, on one process or under mpirun.",
        discussion: """
        Writes DIR/config.yaml (the resolved config), DIR/metrics.jsonl (one JSON object per line: \
        step, epoch, loss, lr, images_per_s, step timings; eval lines with test_loss and \
        test_accuracy) and DIR/checkpoints/step-NNNNNNNN.safetensors. DIR defaults to \
        runs/<config name>. With --resume, continues from the newest valid checkpoint in DIR, \
        with the same or another number of ranks; a config that would change the run (batches, \
        schedule, model, data) is refused unless --allow-config-change. SIGTERM, SIGINT, SIGHUP or \
        SIGUSR1 (to launch/train.sh, mpirun or any rank) stops every rank after the current step \
        with a checkpoint (or before the first step, with nothing to save), prints how to \
        continue, and exits with code 75; a rank that waits longer than \
        train.collective_timeout_s for the others ends the job with code 124. Use \
        launch/train.sh -n N CONFIG for several ranks and launch/debug.sh CONFIG for one process.
        """)

    @Option(help: "The YAML config (see configs/).") var config: String
    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set train.lr=0.05 (repeatable).")
    var overrides: [String] = []
    @Option(help: "Run directory (default: runs/<config name>).") var runDir: String?
    @Option(parsing: .unconditional, help: "Stop after this many steps in total (overrides train.max_steps).") var maxSteps: Int?
    @Flag(help: "Continue from the newest valid checkpoint in the run directory.") var resume = false
    @Flag(help: "With --resume: accept a config that differs from the checkpoint's in ways that change the run (the differences are printed).")
    var allowConfigChange = false
    @Option(parsing: .unconditional, help: "Stop after this global step, with a checkpoint, as if interrupted (the schedule is unchanged; continue with --resume).")
    var stopAfterStep: Int?
    @Option(help: ArgumentHelp("Progress: bar (redrawn in place after every step), lines (every train.log_every steps), or auto: a bar when the output is a terminal (default: ABN_PROGRESS, else auto; launch/train.sh sets ABN_PROGRESS=bar for the ranks when its output is a terminal).", valueName: "auto|bar|lines"))
    var progress: ProgressStyle?
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if let maxSteps, maxSteps < 1 { throw ValidationError("--max-steps must be at least 1, got \(maxSteps).") }
        if let stopAfterStep, stopAfterStep < 1 { throw ValidationError("--stop-after-step must be at least 1, got \(stopAfterStep).") }
    }

    func run() throws {
        StopRequest.install()  // first: a stop signal during start-up must find the handlers
        threads.apply()
        let coordinator = Coordinator.launch()
        Launcher.watch(isRoot: coordinator.isRoot)
        coordinator.run {
            var settings = overrides
            if let maxSteps { settings.append("train.max_steps=\(maxSteps)") }
            let config = try coordinator.loadConfig(path: self.config, overrides: settings)
            let name = ((self.config as NSString).lastPathComponent as NSString).deletingPathExtension
            let directory = runDir ?? "runs/\(name)"
            let style = try progress ?? ProgressStyle.fromEnvironment()
            let trainer = Trainer(config: config, runDirectory: directory, coordinator: coordinator, progress: style)
            let outcome = try trainer.run(resume: resume, stopAfterStep: stopAfterStep, allowConfigChange: allowConfigChange)
            let what: String
            switch outcome {
            case .finished:
                return
            case .stopped(let signal, let step):
                what = "stopped by \(StopRequest.name(signal)) after step \(step), with a checkpoint in \(directory)/checkpoints."
            case .stoppedBeforeStart(let signal, let step):
                what = "stopped by \(StopRequest.name(signal)) during start-up, before step \(step): nothing was lost and there is nothing to save."
            }
            var again = ["launch/train.sh", "-n", String(coordinator.comm.size), self.config] + overrides.flatMap { ["--set", $0] }
            if let maxSteps { again += ["--max-steps", String(maxSteps)] }
            if runDir != nil { again += ["--run-dir", directory] }
            let message = "train: \(what) Continue with:\n  " + (again + ["--resume"]).joined(separator: " ")
            coordinator.say(message)
            Launcher.confirmStop(coordinator.comm, message: message)
            Foundation.exit(StopRequest.processExitCode)
        }
    }
}

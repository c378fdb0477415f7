import Foundation
import Testing

/// What `abn train` shows while it runs: lines with the elapsed time and the ETAs of the run
/// and the epoch every train.log_every steps when the output is no terminal; a bar redrawn in
/// place after every step when asked for (--progress bar, ABN_PROGRESS=bar) and under
/// launch/train.sh on a terminal.
@Suite("Training progress", .serialized)
struct TrainingProgressTests {
    let train = ["train", "--config", "configs/tiny.yaml", "--max-steps", "8", "--set", "train.log_every=4", "--set", "train.evaluate=false"]
    /// What starts each redraw of the bar.
    static let redraw = "\r\u{1B}[2Kstep "

    /// The bars drawn in `stdout`, oldest first (each up to the next carriage return or newline).
    static func bars(_ stdout: String) -> [String] {
        stdout.components(separatedBy: redraw).dropFirst().map { "step " + String($0.prefix { $0 != "\r" && $0 != "\n" }) }
    }

    /// Checks the bars of an 8-step run: redrawn, the last one full with the run's and the epoch's ETA.
    static func expectBars(_ stdout: String) {
        let bars = bars(stdout)
        #expect(bars.count >= 2, "bars: \(bars); stdout: \(stdout)")
        #expect(bars.first?.hasPrefix("step 1/8 [") == true, "bars: \(bars)")
        let last = bars.last ?? ""
        #expect(last.hasPrefix("step 8/8 [") && last.contains("] elapsed "), "last bar: \(last)")
        let cells = last.drop { $0 != "[" }.dropFirst().prefix { $0 != "]" }
        #expect(!cells.isEmpty && cells.allSatisfy { $0 == "#" }, "the last bar is not full: \(last)")
        #expect(last.contains("ETA 0:00  epoch 1/1 ETA 0:00"), "last bar: \(last)")
    }

    @Test("not on a terminal: a line every log_every steps with the elapsed time and the run's and epoch's ETA")
    func lines() throws {
        let output = try BinaryRunner.run(train + ["--run-dir", runDirectory("progress-lines")], environment: ["ABN_PROGRESS": ""])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(!output.stdout.contains("\r"), "stdout: \(output.stdout)")
        let steps = output.stdout.split(separator: "\n").filter { $0.hasPrefix("step ") }
        #expect(steps.map { $0.prefix(9) } == ["step 4/8 ", "step 8/8 "], "stdout: \(output.stdout)")
        let pattern = /\  elapsed \d+:\d\d  ETA \d+:\d\d  epoch 1\/1 ETA \d+:\d\d$/
        for line in steps { #expect(line.contains(pattern), "line: \(line)") }
        #expect(steps.last?.hasSuffix("ETA 0:00  epoch 1/1 ETA 0:00") == true, "lines: \(steps)")
    }

    @Test("a bar redrawn in place, asked for with --progress bar or ABN_PROGRESS=bar",
          arguments: [(["--progress", "bar"], [:]), ([], ["ABN_PROGRESS": "bar"])] as [([String], [String: String])])
    func bar(_ options: [String], _ environment: [String: String]) throws {
        let output = try BinaryRunner.run(train + ["--run-dir", runDirectory("progress-bar-\(options.isEmpty ? "variable" : "option")")] + options,
                                          environment: environment.merging(["COLUMNS": "100"]) { $1 })
        #expect(output.status == 0, "stderr: \(output.stderr)")
        Self.expectBars(output.stdout)
        #expect(!output.stdout.contains("step 4/8  epoch"), "bar style printed the metrics lines: \(output.stdout)")
    }

    @Test("launch/train.sh on a terminal: rank 0 draws the bar through mpirun")
    func barThroughLaunchScript() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else {
            print("Training progress: skipped: util-linux's script, which gives the launch script a terminal, is missing")
            try Test.cancel("skipped: /usr/bin/script (util-linux) is missing")
        }
        let dir = runDirectory("progress-launch")
        let launch = "launch/train.sh -n 2 configs/tiny.yaml " + train.dropFirst(3).joined(separator: " ") + " --run-dir \(dir)"
        let output = try BinaryRunner.command("/bin/bash", ["-c", "exec /usr/bin/script -qec '\(launch)' /dev/null < /dev/null"], environment: ["ABN_PROGRESS": ""])
        #expect(output.status == 0, "stdout: \(output.stdout), stderr: \(output.stderr)")
        #expect(output.stdout.contains("2 rank(s)"), "stdout: \(output.stdout)")
        Self.expectBars(output.stdout)
    }
}

import Foundation
import Testing

/// Runs the release `abn` binary, alone or under mpirun, and collects its output.
enum BinaryRunner {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let binary = packageRoot.appendingPathComponent(".build/release/abn").path

    struct Output {
        let status: Int32
        let stdout: String
        let stderr: String

        /// The JSON objects among stdout's lines.
        var jsonLines: [[String: Any]] {
            stdout.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }
    }

    /// `abn ARGS` directly (ranks == nil) or under `mpirun -n ranks`.
    static func run(_ arguments: [String], ranks: Int? = nil, environment extra: [String: String] = [:]) throws -> Output {
        try execute(arguments, ranks: ranks, script: nil, environment: extra)
    }

    /// A launch script, e.g. `launch/debug.sh ARGS`.
    static func script(_ path: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> Output {
        try execute(arguments, ranks: nil, script: path, environment: extra)
    }

    /// mpirun with the test flags and `arguments` as its application part, e.g. an MPMD line
    /// `-n 1 BINARY ... : -n 2 BINARY ...`.
    static func mpirun(_ arguments: [String]) throws -> Output {
        try command("/usr/bin/env", mpirunFlags + arguments, environment: [:])
    }

    /// A file under Sources changed after the binary was built (nil when none): the tests would
    /// run stale code.
    static let newerSource: String? = {
        let files = FileManager.default
        guard let built = (try? files.attributesOfItem(atPath: binary))?[.modificationDate] as? Date else { return nil }
        let sources = packageRoot.appendingPathComponent("Sources").path
        guard let enumerator = files.enumerator(atPath: sources) else { return nil }
        for case let path as String in enumerator {
            let full = sources + "/" + path
            if let changed = (try? files.attributesOfItem(atPath: full))?[.modificationDate] as? Date, changed > built { return "Sources/" + path }
        }
        return nil
    }()

    static var mpirunFlags: [String] {
        ["mpirun", "--oversubscribe", "--bind-to", "none", "-x", "OPENBLAS_NUM_THREADS"] + (getuid() == 0 ? ["--allow-run-as-root"] : [])
    }

    private static func execute(_ arguments: [String], ranks: Int?, script: String?, environment extra: [String: String]) throws -> Output {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw RunnerError("\(binary) is missing: build it with `swift build -c release` (launch/setup.sh does) before the tests.")
        }
        if let source = newerSource { throw RunnerError("\(binary) is older than \(source): rebuild it with `swift build -c release --product abn`.") }
        if let script { return try command("/bin/bash", [script] + arguments, environment: extra) }
        if let ranks { return try command("/usr/bin/env", mpirunFlags + ["-n", String(ranks), binary] + arguments, environment: extra) }
        return try command(binary, arguments, environment: extra)
    }

    /// Any program, run from the package root with OPENBLAS_NUM_THREADS=1 and `extra` set.
    static func command(_ executable: String, _ arguments: [String], environment extra: [String: String]) throws -> Output {
        try start(executable, arguments, environment: extra).finish()
    }

    /// A launch script started in the background (see `Running`).
    static func startScript(_ path: String, _ arguments: [String]) throws -> Running {
        try start("/bin/bash", [path] + arguments, environment: [:])
    }

    /// Starts a program as `command` does, without waiting for it; `input` is its standard
    /// input (default: the test process's).
    static func start(_ executable: String, _ arguments: [String], environment extra: [String: String], input: FileHandle? = nil) throws -> Running {
        let process = Process()
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        environment["ABN_CACHE_DIR"] = cacheDirectory  // GEMM timings of the tests' own, not the user's
        for (k, v) in extra { environment[k] = v }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = packageRoot
        if let input { process.standardInput = input }
        return try Running(process)
    }

    /// A started process whose output is read while it runs (so a full pipe cannot block it).
    final class Running: @unchecked Sendable {
        let process: Process
        private var outData = Data(), errData = Data()
        private var readers: [Thread] = []

        /// Signalled when the process ends (no polling while waiting).
        private let ended = DispatchSemaphore(value: 0)

        init(_ process: Process) throws {
            self.process = process
            process.terminationHandler = { [ended] _ in ended.signal() }
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try Self.launchUnblocked(process)
            readers = [Thread { [unowned self] in self.outData = out.fileHandleForReading.readDataToEndOfFile() },
                       Thread { [unowned self] in self.errData = err.fileHandleForReading.readDataToEndOfFile() }]
            for r in readers { r.start() }
        }

        var pid: Int32 { process.processIdentifier }

        /// Starts `process` from a thread that blocks no signal: a child inherits its parent
        /// thread's mask, and the test runner's threads block SIGTERM, SIGINT and SIGUSR1,
        /// which a launch script's trap and the ranks' stop handlers need.
        private static func launchUnblocked(_ process: Process) throws {
            nonisolated(unsafe) var failure: Error?
            let done = DispatchSemaphore(value: 0)
            let thread = Thread {
                var none = sigset_t()
                sigemptyset(&none)
                pthread_sigmask(SIG_SETMASK, &none, nil)
                do { try process.run() } catch { failure = error }
                done.signal()
            }
            thread.start()
            done.wait()
            if let failure { throw failure }
        }

        /// Waits for the end (at most `seconds`: then the process is killed and the output says
        /// so, so that a hung job fails its test instead of the whole run) and returns the output.
        func finish(seconds: Double = 900) -> Output {
            var timedOut = false
            if ended.wait(timeout: .now() + seconds) == .timedOut {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                ended.wait()
            }
            while readers.contains(where: { !$0.isFinished }) { usleep(1000) }
            return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                          stderr: String(decoding: errData, as: UTF8.self) + (timedOut ? "\n(killed after \(seconds) s: it did not end)" : ""))
        }
    }
}

/// The GEMM timing cache of the test process's runs (`ABN_CACHE_DIR`).
let cacheDirectory = runDirectory("gemm-timings")

/// A fresh run directory under the system's temporary folder, named after the test process.
func runDirectory(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("abn-test-\(getpid())-\(name)").path
    try? FileManager.default.removeItem(atPath: dir)
    return dir
}

/// The highest training step logged in DIR/metrics.jsonl (0 before the first line).
func loggedStep(_ dir: String) -> Int {
    ((try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
        (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["step"] as? Int
    }.max() ?? 0
}

/// Waits (up to `seconds`) until `condition` holds; returns whether it did.
func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

/// The PIDs of the ranks of a running job, by rank, found by a text unique to their command line.
func rankProcesses(matching text: String) -> [Int: Int32] {
    var ranks: [Int: Int32] = [:]
    for pid in jobProcesses(matching: text) {
        if let rank = processEnvironment(pid)["OMPI_COMM_WORLD_RANK"].flatMap(Int.init) { ranks[rank] = pid }
    }
    return ranks
}

/// The PIDs of every process whose command line contains `text` (e.g. a run directory: the
/// launch script, mpirun and the ranks of a job).
func jobProcesses(matching text: String) -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
        guard let pid = Int32(entry) else { return nil }
        return processCommand(pid).contains(text) ? pid : nil
    }
}

/// The command line of a running process, its arguments separated by spaces.
func processCommand(_ pid: Int32) -> String {
    String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data(), as: UTF8.self)
        .split(separator: "\0").joined(separator: " ")
}

/// The environment of a running process.
func processEnvironment(_ pid: Int32) -> [String: String] {
    let text = String(decoding: FileManager.default.contents(atPath: "/proc/\(pid)/environ") ?? Data(), as: UTF8.self)
    var result: [String: String] = [:]
    for variable in text.split(separator: "\0") {
        guard let equals = variable.firstIndex(of: "=") else { continue }
        result[String(variable[..<equals])] = String(variable[variable.index(after: equals)...])
    }
    return result
}

/// The training losses logged in DIR/metrics.jsonl, in order.
func losses(_ dir: String) throws -> [Double] {
    try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
        (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double
    }
}

struct RunnerError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

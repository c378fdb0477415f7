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

    static var mpirunFlags: [String] {
        ["mpirun", "--oversubscribe", "--bind-to", "none", "-x", "OPENBLAS_NUM_THREADS"] + (getuid() == 0 ? ["--allow-run-as-root"] : [])
    }

    private static func execute(_ arguments: [String], ranks: Int?, script: String?, environment extra: [String: String]) throws -> Output {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw RunnerError("\(binary) is missing: build it with `swift build -c release` (launch/setup.sh does) before the tests.")
        }
        if let script { return try command("/bin/bash", [script] + arguments, environment: extra) }
        if let ranks { return try command("/usr/bin/env", mpirunFlags + ["-n", String(ranks), binary] + arguments, environment: extra) }
        return try command(binary, arguments, environment: extra)
    }

    /// Any program, run from the package root with OPENBLAS_NUM_THREADS=1 and `extra` set.
    static func command(_ executable: String, _ arguments: [String], environment extra: [String: String]) throws -> Output {
        let process = Process()
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_NUM_THREADS"] = "1"
        for (k, v) in extra { environment[k] = v }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = packageRoot
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // read both pipes while the process runs, so a full pipe cannot block it
        nonisolated(unsafe) var errData = Data()
        let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        return Output(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}

/// A fresh run directory under the system's temporary folder, named after the test process.
func runDirectory(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("abn-test-\(getpid())-\(name)").path
    try? FileManager.default.removeItem(atPath: dir)
    return dir
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

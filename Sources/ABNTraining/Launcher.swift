import ABNComm
import Foundation

/// What `launch/train.sh` and the ranks it starts tell each other (`ABN_LAUNCHER_DIR`, a
/// directory of the script's own, and `ABN_LAUNCHER_PID`, set only by the script).
///
/// The script keeps the only writing end of a pipe that mpirun reads as its standard input
/// and forwards to rank 0's. A stop signal to the script closes it (after a line naming the
/// signal), and so does the script's death, whatever kills it: rank 0 reads the end of its
/// input and asks for a stop, the ranks agree on it after their step, checkpoint and exit.
/// The end of a pipe cannot be missed or come too early: it waits for a rank 0 still starting,
/// needs no polling or process ids (which are reused), and reaches rank 0 on any node, since
/// mpirun forwards it there. (`PR_SET_PDEATHSIG` would not do: it fires when the thread that
/// started a process ends, and the ranks' parent is mpirun or its daemon, not the script.)
///
/// Once the stop checkpoint is written, every rank that sees the directory (those on the
/// script's node) writes rank 0's last message to `stopped` in it, so that the script exits 75
/// whatever mpirun returns, e.g. when a batch system's SIGTERM reached mpirun as well (the
/// script then ends mpirun, which sleeps through its kill sequence without forwarding rank
/// 0's output, and prints the message itself); when the script is
/// gone, they remove the directory in its place. (mpirun closes rank 0's input too when it
/// gets a SIGTERM, so the end of the input alone does not tell that the script is gone.)
public enum Launcher {
    private static var directory: String? { ProcessInfo.processInfo.environment["ABN_LAUNCHER_DIR"] }

    /// Whether the script still runs: its process exists and is no zombie waiting for its
    /// parent (a reused process id counts as running: the directory then stays).
    private static var scriptRuns: Bool {
        guard let pid = ProcessInfo.processInfo.environment["ABN_LAUNCHER_PID"].flatMap(Int32.init) else { return true }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        // "PID (NAME) STATE ...", where NAME may hold spaces and parentheses
        let state = stat.lastIndex(of: ")").flatMap { stat[$0...].dropFirst(2).first }
        return state != "Z"
    }

    /// On rank 0 of a job started by launch/train.sh, starts the thread that reads standard
    /// input to its end and then asks for a stop.
    public static func watch(isRoot: Bool) {
        guard isRoot, directory != nil else { return }
        let thread = Thread {
            var text = Data()
            var buffer = [UInt8](repeating: 0, count: 256)
            while true {
                let count = read(STDIN_FILENO, &buffer, buffer.count)
                if count > 0 { text.append(contentsOf: buffer[..<count]); continue }
                if count < 0 && errno == EINTR { continue }
                if count < 0 { return }  // no input to watch
                break
            }
            let line = String(decoding: text, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
            StopRequest.ask(StopRequest.viaLauncher | (signalNumbers[line] ?? 0), counting: SIGUSR1)
        }
        thread.name = "abn launcher"
        thread.start()
    }

    /// Tells the script that the run stopped as asked, with rank 0's `message`, once every rank
    /// knows that rank 0 wrote the checkpoint (or that there was nothing to save).
    public static func confirmStop(_ comm: Communicator, message: String) {
        comm.barrier(what: "rank 0 writes the stop checkpoint")
        guard let directory else { return }
        if !scriptRuns {
            try? FileManager.default.removeItem(atPath: directory)
        } else {
            _ = FileManager.default.createFile(atPath: (directory as NSString).appendingPathComponent("stopped"), contents: Data((message + "\n").utf8))
        }
    }

    /// The signals the script names on the pipe.
    private static let signalNumbers: [String: Int32] = ["TERM": SIGTERM, "INT": SIGINT, "HUP": SIGHUP]
}

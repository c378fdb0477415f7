import ABNComm
import ABNTensor
import Foundation
import Synchronization

/// SIGTERM (what a batch scheduler sends before it ends a job), SIGINT (Ctrl-C), SIGHUP (a
/// closed terminal) and SIGUSR1 (what mpirun forwards to every rank, and Slurm's
/// `--signal=USR1@SECONDS` warning) ask a training run to stop after the current step, with a
/// checkpoint; so does `launch/train.sh` through `Launcher`. The ranks agree on it before the
/// first step and after every step.
///
/// A second signal of the same kind ends the process at once, except SIGTERM sent by the
/// process's parent: an MPI daemon sends it when it shuts the job down, often right after the
/// batch system's own SIGTERM reached the rank, and follows it with SIGKILL after its grace.
/// SIGHUP left ignored by whoever started the process (`nohup`) stays ignored.
public enum StopRequest {
    /// The exit code of a run stopped this way: 75, EX_TEMPFAIL ("try again": resume it).
    public static let exitCode: Int32 = 75

    /// Added to a signal number by `Launcher`: the signal was sent to the launch script, which
    /// passed it on (the code alone: the script or mpirun ended rank 0's input without one).
    public static let viaLauncher: Int32 = 0x100

    /// What a stopped process exits with: `exitCode` alone, 0 under an MPI launcher (a rank
    /// exiting with another code makes mpirun kill the ranks still finishing; launch/train.sh
    /// learns of the stop from `Launcher.confirmStop` and returns 75 itself).
    public static var processExitCode: Int32 { MPICommunicator.launchedByMPI ? 0 : exitCode }

    fileprivate static let request = Atomic<Int32>(0)
    /// One bit per signal number already received.
    fileprivate static let kinds = Atomic<Int>(0)

    /// The first stop request received: a signal number, or a `viaLauncher` code (0: none). A
    /// later one replaces the bare end of rank 0's input, which says less.
    public static var received: Int32 { request.load(ordering: .relaxed) }

    /// Records `code` unless a request that says as much came first (lock-free: handlers call it).
    fileprivate static func record(_ code: Int32) {
        var current = request.load(ordering: .relaxed)
        while current == 0 || current == viaLauncher && code != viaLauncher {
            let (exchanged, original) = request.compareExchange(expected: current, desired: code, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// Installs the handlers and starts the thread that receives them (`SignalReceiver`: it
    /// accepts them even where a parent blocked them, as some launchers and test runners do,
    /// and the threads computing oneDNN products block them).
    public static func install() {
        _ = received  // initializes the atomics before a handler can touch them
        _ = kinds.load(ordering: .relaxed)
        for number in [SIGTERM, SIGINT, SIGHUP, SIGUSR1] {
            var current = sigaction()
            sigaction(number, nil, &current)
            let ignored = unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
            if number == SIGHUP && ignored { continue }
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = stopHandler
            action.sa_flags = SA_SIGINFO
            sigaction(number, &action, nil)
        }
        SignalReceiver.start()
    }

    /// Records a request that did not come as a signal (`Launcher`). It counts as a first
    /// `counting` signal, so that the next one ends the process at once.
    static func ask(_ code: Int32, counting: Int32) {
        kinds.bitwiseOr(1 << Int(counting), ordering: .relaxed)
        record(code)
    }

    /// What asked for the stop, e.g. "SIGTERM" or "SIGHUP to launch/train.sh".
    public static func name(_ code: Int32) -> String {
        if code & viaLauncher != 0 {
            let number = code & ~viaLauncher
            return number == 0 ? "the end of launch/train.sh or mpirun" : name(number) + " to launch/train.sh"
        }
        switch code {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        case SIGHUP: return "SIGHUP"
        case SIGUSR1: return "SIGUSR1"
        default: return "signal \(code)"
        }
    }
}

/// Records the first request; a repeated signal (but SIGTERM from the parent) takes its
/// default action once the handler returns.
private func stopHandler(_ number: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _: UnsafeMutableRawPointer?) {
    let bit = 1 << Int(number)
    let seen = StopRequest.kinds.bitwiseOr(bit, ordering: .relaxed).oldValue & bit != 0
    let sender = info?.pointee._sifields._kill.si_pid ?? 0
    if seen && !(number == SIGTERM && sender == getppid()) {
        signal(number, SIG_DFL)
        raise(number)  // blocked while the handler runs: delivered, with the default action, as it returns
        return
    }
    StopRequest.record(number)
}

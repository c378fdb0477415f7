import ABNComm
import ABNTensor
import Foundation
import Synchronization

/// SIGTERM (what a batch scheduler sends before it ends a job), SIGINT (Ctrl-C) and SIGUSR1
/// (what mpirun forwards to every rank, what `launch/train.sh` turns the others into, and
/// Slurm's `--signal=USR1@SECONDS` warning) ask a training run to stop after the current step,
/// with a checkpoint; the ranks agree on it after every step. A second signal of the same kind
/// ends the process at once.
public enum StopRequest {
    /// The exit code of a run stopped this way: 75, EX_TEMPFAIL ("try again": resume it).
    public static let exitCode: Int32 = 75

    /// What a stopped process exits with: `exitCode` alone, 0 under an MPI launcher (a rank
    /// exiting with another code makes mpirun kill the ranks still finishing; launch/train.sh,
    /// which passed the stop on, returns 75 itself).
    public static var processExitCode: Int32 { MPICommunicator.launchedByMPI ? 0 : exitCode }

    fileprivate static let signalNumber = Atomic<Int32>(0)

    /// The first stop signal received (0: none).
    public static var received: Int32 { signalNumber.load(ordering: .relaxed) }

    /// Installs the handlers and starts the thread that receives them (`SignalReceiver`: it
    /// accepts them even where a parent blocked them, as some launchers and test runners do,
    /// and the threads computing oneDNN products block them).
    public static func install() {
        _ = received  // initializes the atomic before a handler can touch it
        for number in [SIGTERM, SIGINT, SIGUSR1] {
            signal(number, stopHandler)
        }
        SignalReceiver.start()
    }

    /// The signal's name, e.g. "SIGTERM".
    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGUSR1: "SIGUSR1"
        default: "signal \(number)"
        }
    }
}

/// Records the signal and restores the default action, so that a second one ends the process.
private func stopHandler(_ number: Int32) {
    StopRequest.signalNumber.store(number, ordering: .relaxed)
    signal(number, SIG_DFL)
}

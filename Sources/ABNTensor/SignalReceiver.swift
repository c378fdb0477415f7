import Foundation

/// A thread that accepts the signals sent to the process. The threads that compute oneDNN
/// products block them (CDNNL's `abn_block_async_signals`: its JIT kernels may run with the
/// stack pointer in the heap), so a stop request, mpirun's forwarding or a library's own
/// signal must find another thread; this one sleeps between them. Its handlers do not change:
/// whoever installed one still gets the signal.
public enum SignalReceiver {
    /// Starts the thread, once per process; later calls return at once.
    public static func start() { _ = started }

    private static let started: Bool = {
        let thread = Thread {
            var none = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, nil)
            while true { pause() }
        }
        thread.name = "abn signals"
        thread.start()
        return true
    }()
}

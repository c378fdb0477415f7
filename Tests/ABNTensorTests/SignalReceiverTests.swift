import ABNTensor
import Foundation
import Synchronization
import Testing

private let handled = Atomic<Int>(0)
private func countSignal(_: Int32) { handled.add(1, ordering: .relaxed) }

@Suite("Signals while oneDNN computes")
struct SignalReceiverTests {
    /// oneDNN's JIT sgemm runs long sums with its stack pointer in a heap buffer, so a handler
    /// entered on that thread writes its frame over the heap. The threads computing oneDNN
    /// products therefore block asynchronous signals, and `SignalReceiver` takes those sent to
    /// the process. A storm of both kinds: signals aimed at the computing threads themselves
    /// (without the shield they corrupt the heap within a second: `corrupted size vs. prev_size`,
    /// or wrong products), and signals sent to the process, which must still be handled.
    @Test("a storm of signals during oneDNN products with k = 4096: handled elsewhere, products exact, heap intact")
    func storm() throws {
        signal(SIGUSR2, countSignal)
        let k = 4096
        let wrong = Atomic<Int>(0)
        let products = Atomic<Int>(0)
        let computing = Mutex<[pthread_t]>([])
        let finished = DispatchSemaphore(value: 0)
        // the storm lasts until it is large enough, whatever the machine's load (at most a minute)
        let stop = Atomic<Bool>(false)
        let (signals, wanted, limit) = (40000, 2000, monotonicSeconds() + 60)
        for n in [64, 96] {
            Thread {
                // an ordinary thread accepts signals (the test runner's threads, whose mask this
                // one inherits, may block them); its first product blocks them, and from then
                // on the storm aims at it
                var none = sigset_t()
                sigemptyset(&none)
                pthread_sigmask(SIG_SETMASK, &none, nil)
                let a = UnsafeMutablePointer<Float>.allocate(capacity: n * k)
                let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
                a.initialize(repeating: 1, count: n * k)
                BLAS.sgemm(transB: true, m: n, n: n, k: k, a: a, lda: k, b: a, ldb: k, c: c, ldc: n, library: .onednn)
                a.deallocate()
                c.deallocate()
                computing.withLock { $0.append(pthread_self()) }
                while !stop.load(ordering: .relaxed) {
                    // fresh heap blocks each time: a corrupted neighbour shows at their free
                    let a = UnsafeMutablePointer<Float>.allocate(capacity: n * k)
                    let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
                    a.initialize(repeating: 1, count: n * k)
                    // C (n x n) = A (n x k) A^T: every value is k
                    BLAS.sgemm(transB: true, m: n, n: n, k: k, a: a, lda: k, b: a, ldb: k, c: c, ldc: n, library: .onednn)
                    if (0..<n * n).contains(where: { c[$0] != Float(k) }) { wrong.add(1, ordering: .relaxed) }
                    products.add(1, ordering: .relaxed)
                    a.deallocate()
                    c.deallocate()
                }
                finished.signal()
            }.start()
        }
        var sent = 0
        while (sent < signals || products.load(ordering: .relaxed) < wanted) && monotonicSeconds() < limit {
            let threads = computing.withLock { $0 }
            for thread in threads { pthread_kill(thread, SIGUSR2) }
            kill(getpid(), SIGUSR2)
            if threads.count == 2 { sent += 1 }
            usleep(20)
        }
        stop.store(true, ordering: .relaxed)
        finished.wait()
        finished.wait()
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(products.load(ordering: .relaxed) >= wanted, "products during the storm")
        #expect(sent >= signals, "signals sent at both computing threads")
        #expect(handled.load(ordering: .relaxed) > 100, "the signals sent to the process must still be handled")
    }
}

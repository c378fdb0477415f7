import CBLAS
import Dispatch
import Foundation
import Synchronization

/// The one thread count of the engine, so that several ranks per node do not oversubscribe
/// the cores. It starts from `OPENBLAS_NUM_THREADS` when that is set, else from the number of
/// cores; `Parallel.setThreadCount(_:)` overrides it.
///
/// All parallelism is the engine's own: OpenBLAS is kept single-threaded and each worker
/// calls sgemm on its own block of work (a convolution gives each worker whole chunks of
/// images, so the im2col columns a worker writes stay in its core's cache for its GEMM).
public enum Parallel {
    private static let configured = Atomic<Int>(0)

    /// Workers used by the kernels.
    public static var threadCount: Int {
        let n = configured.load(ordering: .relaxed)
        if n > 0 { return n }
        let initial = defaultThreadCount()
        setThreadCount(initial)
        return initial
    }

    /// Sets the engine's worker count (OpenBLAS stays single-threaded under it).
    public static func setThreadCount(_ n: Int) {
        precondition(n >= 1, "the thread count must be at least 1, got \(n)")
        configured.store(n, ordering: .relaxed)
        openblas_set_num_threads(1)
    }

    /// `OPENBLAS_NUM_THREADS` if it holds a positive integer, else the number of active cores.
    public static func defaultThreadCount() -> Int {
        if let text = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"],
           let n = Int(text.trimmingCharacters(in: .whitespaces)), n > 0 {
            return n
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Calls `body(i)` for every `i` in `0..<count`, split into contiguous blocks, one per
    /// worker; inline when one worker or fewer than `2 * minimumPerThread` items.
    @inlinable
    public static func forEach(_ count: Int, minimumPerThread: Int = 1, _ body: (Int) -> Void) {
        forRanges(count, minimumPerThread: minimumPerThread) { range in
            for i in range { body(i) }
        }
    }

    /// Calls `body(range)` on disjoint contiguous ranges covering `0..<count`, one per worker.
    @inlinable
    public static func forRanges(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let workers = min(threadCount, max(1, count / max(1, minimumPerThread)))
        if workers == 1 {
            body(0..<count)
            return
        }
        // The kernels hand raw pointers to disjoint ranges; Dispatch's @Sendable requirement
        // cannot see that the ranges do not overlap.
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let lo = count * w / workers
            let hi = count * (w + 1) / workers
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Calls `body(worker, range)` with worker `w` in `0..<workers(for: count)` taking the
    /// w-th contiguous block of `0..<count`. The split depends only on the count and the
    /// thread count, so per-worker partial sums are reproducible from run to run.
    public static func forWorkers(_ count: Int, _ body: (_ worker: Int, _ items: Range<Int>) -> Void) {
        let workers = workers(for: count)
        if workers <= 1 {
            if count > 0 { body(0, 0..<count) }
            return
        }
        nonisolated(unsafe) let body = body
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            body(w, count * w / workers..<count * (w + 1) / workers)
        }
    }

    /// Workers `forWorkers` uses for `count` items.
    public static func workers(for count: Int) -> Int { max(1, min(threadCount, count)) }
}

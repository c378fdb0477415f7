import CBLAS
import Dispatch
import Foundation
import Synchronization

/// The one thread count of the engine, so that several ranks per node do not oversubscribe
/// the cores. It starts from `OPENBLAS_NUM_THREADS` when that is set, else from the number of
/// cores; `Parallel.setThreadCount(_:)` overrides it.
///
/// All parallelism is the engine's own: OpenBLAS is kept single-threaded and each worker
/// calls sgemm on its own work items (a convolution gives each worker whole chunks of
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

    /// Calls `body(range)` on disjoint contiguous ranges covering `0..<count` (up to four per
    /// worker, at least `minimumPerThread` long), which the workers claim one at a time, so that
    /// a worker the machine slows down does not hold the others up.
    @inlinable
    public static func forRanges(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let workers = min(threadCount, max(1, count / max(1, minimumPerThread)))
        if workers == 1 {
            body(0..<count)
            return
        }
        let pieces = min(4 * workers, max(workers, count / max(1, minimumPerThread)))
        forEachClaimed(pieces, workers: workers) { _, piece in
            body(count * piece / pieces..<count * (piece + 1) / pieces)
        }
    }

    /// Calls `body(worker, index)` for every index in `0..<count`, with worker `w` below
    /// `workers` (default and at most `workers(for: count)`; pass the number of per-worker
    /// buffers you hold, so that a concurrent `setThreadCount` cannot outgrow them): the workers
    /// claim the indices in increasing order, one at a time, so a worker never runs two indices
    /// at once and per-worker buffers can be reused.
    @inlinable
    public static func forEachClaimed(_ count: Int, workers: Int? = nil, _ body: (_ worker: Int, _ index: Int) -> Void) {
        let workers = min(workers ?? Int.max, Self.workers(for: count))
        if workers <= 1 {
            for index in 0..<count { body(0, index) }
            return
        }
        let next = Atomic<Int>(0)
        // The kernels hand raw pointers to disjoint work; Dispatch's @Sendable requirement
        // cannot see that.
        nonisolated(unsafe) let body = body
        withUnsafePointer(to: next) { next in
            nonisolated(unsafe) let next = next
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                while true {
                    let index = next.pointee.wrappingAdd(1, ordering: .relaxed).oldValue
                    if index >= count { break }
                    body(worker, index)
                }
            }
        }
    }

    /// Workers `forEachClaimed` uses for `count` items.
    public static func workers(for count: Int) -> Int { max(1, min(threadCount, count)) }
}

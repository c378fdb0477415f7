import Synchronization

/// Counts the bytes of every tensor buffer (activations, parameters, gradients and scratch
/// such as im2col columns): live bytes now and the peak since the last `resetPeak()`.
///
/// Thread-safe. Allocations are charged to `MemoryLedger.current`, a task-local that defaults
/// to the run's ledger (`RunContext.process.ledger`), so a test or benchmark can measure one
/// piece of work in isolation: `MemoryLedger.$current.withValue(ledger) { ... }`.
public final class MemoryLedger: Sendable {
    /// The ledger that new tensor buffers are charged to.
    @TaskLocal public static var current: MemoryLedger = RunContext.process.ledger

    private struct Counts {
        var live = 0
        var peak = 0
        var allocations = 0
    }
    private let counts = Mutex(Counts())

    public init() {}

    /// Bytes currently allocated and not yet freed.
    public var liveBytes: Int { counts.withLock { $0.live } }

    /// Highest `liveBytes` since creation or the last `resetPeak()`.
    public var peakBytes: Int { counts.withLock { $0.peak } }

    /// Number of allocations charged so far (a steady-state step should add none).
    public var allocationCount: Int { counts.withLock { $0.allocations } }

    /// Starts a new peak measurement from the current live bytes.
    public func resetPeak() {
        counts.withLock { $0.peak = $0.live }
    }

    func recordAllocation(bytes: Int) {
        counts.withLock {
            $0.live += bytes
            $0.allocations += 1
            if $0.live > $0.peak { $0.peak = $0.live }
        }
    }

    func recordFree(bytes: Int) {
        counts.withLock { $0.live -= bytes }
    }
}

import ABNTensor
import CMPI
import Foundation
import Synchronization

/// Ends a job whose ranks stopped meeting. The limit on every wait for other ranks
/// (`train.collective_timeout_s`) and the step the job is at are the run's
/// (`RunContext.process.collectiveTimeout` and `.step`).
///
/// A rank whose wait outlasts the limit asks the others, on a communicator of its own, where
/// they wait; for a few seconds it collects the answers of the ranks that are waiting too,
/// then prints which ranks are waiting where and which did not answer (stopped, stalled,
/// dead, or busy elsewhere), and ends the job with `MPI_Abort` and exit code 124.
public enum Watchdog {
    /// The exit code of a job ended by the watchdog (that of `timeout(1)`).
    public static let exitCode: Int32 = 124

    /// The watchdog's communicator, as the bits of its handle (0: none).
    private static let diagnostics = Atomic<UInt>(0)
    private static let expiring = Atomic<Bool>(false)

    /// Gives the watchdog its communicator (a duplicate of the world, made while every rank is present).
    static func attach(_ comm: MPI_Comm) { diagnostics.store(UInt(bitPattern: Int(bitPattern: comm)), ordering: .relaxed) }

    /// Ends the job: the limit ran out while this rank waited `waited` seconds in `what`.
    static func expire(rank: Int, size: Int, what: String, waited: Double) -> Never {
        // one thread per process reports (the communication thread may expire at the same time)
        guard !expiring.exchange(true, ordering: .relaxed) else { while true { sleep(1) } }
        let step = RunContext.process.step, limitSeconds = RunContext.process.collectiveTimeout
        let place = step >= 0 ? "\(what) at step \(step)" : what
        let handle = MPI_Comm(bitPattern: Int(bitPattern: diagnostics.load(ordering: .relaxed)))
        let answers = handle.map { exchange(place, on: $0, rank: rank, size: size) } ?? [:]
        let head = "abn (rank \(rank)): waited \(Int(waited)) s for the other ranks in \(place); the limit is train.collective_timeout_s = \(limitSeconds)."
        var lines = [head]
        let waitingHere = answers.filter { $0.value == place }.keys.sorted()
        if !waitingHere.isEmpty { lines.append("  waiting there too: rank(s) \(list(waitingHere))") }
        for (other, elsewhere) in answers.filter({ $0.value != place }).sorted(by: { $0.key < $1.key }) {
            lines.append("  rank \(other) waits elsewhere: in \(elsewhere) (the ranks disagree on what comes next)")
        }
        let silent = (0..<size).filter { $0 != rank && answers[$0] == nil }
        if !silent.isEmpty {
            lines.append("  no answer from rank(s) \(list(silent)): stopped, stalled (swapping, a hung file system), dead, or busy longer than the limit")
        }
        lines.append("  Ending the job (exit code \(exitCode)). If that work legitimately takes longer, raise train.collective_timeout_s; continue with --resume.")
        // the lowest rank that waits speaks for the others
        let speaker = ([rank] + answers.keys).min()!
        let text = speaker == rank ? lines.joined(separator: "\n") : head + " (rank \(speaker) reports the others)"
        FileHandle.standardError.write(Data((text + "\n").utf8))
        MPI_Abort(cmpi_comm_world(), exitCode)
        exit(exitCode)
    }

    /// Tells every other rank where this one waits and collects, for a grace period, the
    /// places of the ranks that do the same; returns them by rank.
    private static func exchange(_ place: String, on comm: MPI_Comm, rank: Int, size: Int) -> [Int: String] {
        let tag: Int32 = 0x5744
        // the sends may still read the buffer when the job ends: it is never freed
        let bytes = Array(place.utf8.prefix(480))
        let message = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, bytes.count))
        message.initialize(from: bytes, count: bytes.count)
        for other in 0..<size where other != rank {
            var request: MPI_Request? = cmpi_request_null()
            MPI_Isend(message, Int32(bytes.count), cmpi_byte(), Int32(other), tag, comm, &request)
        }
        var answers: [Int: String] = [:]
        let grace = min(10, max(1, RunContext.process.collectiveTimeout / 4)), start = monotonicSeconds()
        while monotonicSeconds() - start < grace && answers.count < size - 1 {
            var flag: Int32 = 0
            var status = MPI_Status()
            MPI_Iprobe(cmpi_any_source(), tag, comm, &flag, &status)
            if flag == 0 { usleep(10_000); continue }
            var count: Int32 = 0
            MPI_Get_count(&status, cmpi_byte(), &count)
            var buffer = [UInt8](repeating: 0, count: Int(max(count, 1)))
            let source = cmpi_status_source(&status)
            MPI_Recv(&buffer, count, cmpi_byte(), source, tag, comm, cmpi_status_ignore())
            answers[Int(source)] = String(decoding: buffer.prefix(Int(count)), as: UTF8.self)
        }
        return answers
    }

    private static func list(_ ranks: [Int]) -> String { ranks.map(String.init).joined(separator: ", ") }
}

/// Waits for a nonblocking MPI operation without holding a core: polls `MPI_Test` for the
/// first millisecond (most collectives end there), then sleeps between polls (20 us growing
/// to 1 ms); past the watchdog's limit, ends the job naming `what`.
func waitForRequest(_ request: inout MPI_Request?, rank: Int, size: Int, what: () -> String) {
    let start = monotonicSeconds()
    var pause: UInt32 = 20
    while true {
        var done: Int32 = 0
        MPICommunicator.check(MPI_Test(&request, &done, cmpi_status_ignore()), "MPI_Test in \(what())")
        if done != 0 { return }
        let waited = monotonicSeconds() - start
        if waited < 0.001 { continue }
        let limit = RunContext.process.collectiveTimeout
        if limit > 0 && waited > limit { Watchdog.expire(rank: rank, size: size, what: what(), waited: waited) }
        usleep(pause)
        pause = min(pause * 2, 1000)
    }
}

import ABNComm
import ABNLayers
import Foundation

/// Ranks as threads of one process, for in-process tests of synchronized layers and the training loop: each rank's
/// communicator deposits its contribution at a barrier and combines everyone's in rank order,
/// as a deterministic MPI would. `ThreadCommunicator.group(size:)` makes one per rank.
public final class ThreadCommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public var size: Int { exchange.size }
    private let exchange: Exchange

    private init(rank: Int, exchange: Exchange) {
        self.rank = rank
        self.exchange = exchange
    }

    /// The communicators of `size` ranks.
    public static func group(size: Int) -> [ThreadCommunicator] {
        let exchange = Exchange(size: size)
        return (0..<size).map { ThreadCommunicator(rank: $0, exchange: exchange) }
    }

    /// Every rank's `bytes`, by rank, once all have given theirs.
    private func allgather(_ bytes: [UInt8]) -> [[UInt8]] { exchange.allgather(rank: rank, bytes) }

    private func doubles(_ p: UnsafePointer<Double>, _ count: Int) -> [[Double]] {
        allgather(Array(UnsafeRawBufferPointer(start: p, count: count * 8))).map { bytes in
            bytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        }
    }

    public func allreduceSum(_ values: UnsafeMutablePointer<Double>, count: Int, what: String) {
        let all = doubles(values, count)
        for i in 0..<count { values[i] = all.reduce(0) { $0 + $1[i] } }
    }

    public func allreduceSum(_ values: UnsafeMutablePointer<Float>, count: Int, what: String) {
        let all = allgather(Array(UnsafeRawBufferPointer(start: values, count: count * 4))).map { bytes in
            bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        for i in 0..<count { values[i] = all.reduce(0) { $0 + $1[i] } }
    }

    public func allreduceMax(_ values: UnsafeMutablePointer<Double>, count: Int, what: String) {
        let all = doubles(values, count)
        for i in 0..<count { values[i] = all.map { $0[i] }.max()! }
    }

    public func allreduceMoments(_ packed: UnsafeMutablePointer<Double>, channels: Int, what: String) {
        let all = doubles(packed, 1 + 2 * channels)
        var merged = [Double](repeating: 0, count: 1 + 2 * channels)
        for part in all { mergeMomentsChan(into: &merged, part, channels: channels) }
        packed.update(from: merged, count: merged.count)
    }

    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, what: String) {
        let all = allgather(rank == root ? Array(UnsafeRawBufferPointer(start: buffer, count: bytes)) : [])
        all[root].withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes) }
    }

    public func allgather(_ value: Int64, what: String) -> [Int64] {
        allgather(withUnsafeBytes(of: value) { Array($0) }).map { $0.withUnsafeBytes { $0.load(as: Int64.self) } }
    }

    public func gather(_ values: UnsafePointer<Float>, count: Int, root: Int, what: String) -> [Float] {
        let all = allgather(Array(UnsafeRawBufferPointer(start: values, count: count * 4)))
        guard rank == root else { return [] }
        return all.flatMap { bytes in bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) } }
    }

    public func barrier(what: String) { _ = allgather([]) }

    public func duplicate() -> Communicator { ThreadCommunicator(rank: rank, exchange: exchange.child(rank: rank)) }

    public func abort(code: Int32) -> Never { fatalError("a rank aborted the in-process job with code \(code)") }

    /// The meeting point of the ranks' contributions, reused round after round.
    private final class Exchange: @unchecked Sendable {
        let size: Int
        private let condition = NSCondition()
        private var deposits: [[UInt8]]
        private var arrived = 0, round = 0
        private var result: [[UInt8]] = []
        private var children: [Exchange] = []
        private var childrenTaken: [Int]

        init(size: Int) {
            self.size = size
            deposits = Array(repeating: [], count: size)
            childrenTaken = Array(repeating: 0, count: size)
        }

        func allgather(rank: Int, _ bytes: [UInt8]) -> [[UInt8]] {
            condition.lock()
            defer { condition.unlock() }
            let mine = round
            deposits[rank] = bytes
            arrived += 1
            if arrived == size {
                result = deposits
                arrived = 0
                round += 1
                condition.broadcast()
            } else {
                while round == mine { condition.wait() }
            }
            return result
        }

        /// The k-th duplicate of every rank meets the other ranks' k-th.
        func child(rank: Int) -> Exchange {
            condition.lock()
            defer { condition.unlock() }
            let k = childrenTaken[rank]
            childrenTaken[rank] += 1
            if children.count <= k { children.append(Exchange(size: size)) }
            return children[k]
        }
    }
}

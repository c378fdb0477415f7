import ABNComm
import ABNLayers
import ABNTensor
import Foundation
import Testing

/// A fake world of `size` ranks whose allreduce doubles the values (as if one other rank held
/// the same) and records what was reduced.
final class RecordingCommunicator: Communicator, @unchecked Sendable {
    let rank = 0, size: Int
    private let lock = NSLock()
    private(set) var reductions: [(offset: Int, count: Int, what: String)] = []
    private let base: UnsafeMutablePointer<Float>?
    private(set) var duplicates: [RecordingCommunicator] = []

    init(size: Int, base: UnsafeMutablePointer<Float>? = nil) {
        self.size = size
        self.base = base
    }

    func allreduceSum(_ values: UnsafeMutablePointer<Float>, count: Int, what: String) {
        for i in 0..<count { values[i] *= 2 }
        lock.withLock { reductions.append((base.map { values - $0 } ?? -1, count, what)) }
    }
    func allreduceSum(_ values: UnsafeMutablePointer<Double>, count: Int, what: String) {
        lock.withLock { reductions.append((-1, count, what)) }
    }
    func allreduceMax(_ values: UnsafeMutablePointer<Double>, count: Int, what: String) {}
    func allreduceMoments(_ packed: UnsafeMutablePointer<Double>, channels: Int, what: String) {
        lock.withLock { reductions.append((-1, 1 + 2 * channels, what)) }
    }
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, what: String) {}
    func allgather(_ value: Int64, what: String) -> [Int64] { Array(repeating: value, count: size) }
    func gather(_ values: UnsafePointer<Float>, count: Int, root: Int, what: String) -> [Float] { [] }
    func barrier(what: String) {}
    func duplicate() -> Communicator {
        let copy = RecordingCommunicator(size: size, base: base)
        duplicates.append(copy)
        return copy
    }
    func abort(code: Int32) -> Never { fatalError("abort \(code)") }
}

@Suite("Gradient averaging")
struct GradientAveragerTests {
    /// Five parameters of 300 floats (1200 bytes) each.
    func store() -> ParameterStore {
        ParameterStore((0..<5).map { Parameter("p\($0)", value: Tensor(Array(repeating: Float($0 + 1), count: 300), shape: [300])) })
    }

    @Test("buckets tile the gradient buffer from the last parameter back, each named in its collective")
    func buckets() throws {
        let s = store()
        for i in 0..<s.gradients.count { s.gradients.data[i] = Float(i) }
        let comm = RecordingCommunicator(size: 2, base: s.gradients.data)
        let averager = GradientAverager(s, comm: comm, bucketBytes: 2000, overlap: false)
        averager.begin()
        for p in s.parameters.reversed() { averager.parameterReady(p) }
        averager.finish()
        // 2000 bytes: two parameters per bucket, the first parameter alone in the last one
        #expect(comm.reductions.map(\.offset) == [900, 300, 0] && comm.reductions.map(\.count) == [600, 600, 300])
        #expect(comm.reductions.map(\.what) == ["gradient bucket 1 of 3", "gradient bucket 2 of 3", "gradient bucket 3 of 3"])
        #expect((0..<s.gradients.count).allSatisfy { s.gradients.data[$0] == 2 * Float($0) })  // every value reduced once
    }

    @Test("overlapping: buckets are reduced as they become ready, and the thread and its communicator end with the averager")
    func overlapping() throws {
        let s = store()
        let comm = RecordingCommunicator(size: 2, base: s.gradients.data)
        var averager: GradientAverager? = GradientAverager(s, comm: comm, bucketBytes: 2000, overlap: true)
        try #require(averager!.overlapping)
        weak let worker = comm.duplicates.first
        averager!.begin()
        for p in s.parameters.reversed() { averager!.parameterReady(p) }
        averager!.finish()
        #expect(comm.duplicates.first!.reductions.map(\.offset) == [900, 300, 0])
        #expect(comm.reductions.isEmpty)  // nothing on the main communicator
        comm.forgetDuplicates()
        averager = nil
        // the thread drops its last reference as it returns, just after stop() saw it finish
        let deadline = Date().addingTimeInterval(5)
        while worker != nil && Date() < deadline { usleep(1000) }
        #expect(worker == nil, "the communication thread still holds its communicator")
    }

    @Test("one rank: nothing is reduced and no thread starts")
    func single() {
        let s = store()
        let comm = RecordingCommunicator(size: 1)
        let averager = GradientAverager(s, comm: comm, bucketBytes: 2000, overlap: true)
        #expect(!averager.overlapping)
        averager.begin()
        for p in s.parameters.reversed() { averager.parameterReady(p) }
        averager.finish()
        #expect(comm.reductions.isEmpty)
    }
}

extension RecordingCommunicator {
    func forgetDuplicates() { duplicates.removeAll() }
}

import ABNLayers
import ABNTensor
import Foundation

/// Sums the flat gradient buffer across ranks in buckets, overlapping the reduction with the
/// rest of the backward pass.
///
/// Gradients are already scaled for the mean loss over the global batch (each rank divides
/// its loss by the global batch size), so the sum over ranks is the gradient of that mean,
/// with uneven slices weighted by their sample counts. Buckets are contiguous ranges of the
/// flat buffer, formed from the last parameter backwards (the order in which backward
/// finishes them), each at least `bucketBytes` long. When every parameter of a bucket is
/// ready, the bucket goes to a communication thread that reduces it on its own duplicated
/// communicator; `finish()` waits for the rest and reports the time the caller was exposed.
public final class GradientAverager {
    private let gradients: Tensor
    private let buckets: [Range<Int>]
    /// For each parameter (by offset): its bucket.
    private let bucketOfOffset: [Int: Int]
    private let parametersPerBucket: [Int]
    private var pending: [Int] = []
    private let worker: CommunicationThread?
    private let comm: Communicator
    /// Seconds `finish()` waited for reductions in the last step (not hidden behind backward).
    public private(set) var exposedSeconds = 0.0
    /// Whether reductions overlap backward (a communication thread is running).
    public var overlapping: Bool { worker != nil }

    /// - Parameters:
    ///   - overlap: reduce buckets on a communication thread during backward; needs an MPI
    ///     library with MPI_THREAD_MULTIPLE (otherwise buckets are reduced in `finish()`).
    public init(_ store: ParameterStore, comm: Communicator, bucketBytes: Int, overlap: Bool) {
        gradients = store.gradients
        self.comm = comm
        var buckets: [Range<Int>] = [], owner: [Int: Int] = [:], counts: [Int] = []
        var hi = store.values.count, size = 0, members = 0
        for p in store.parameters.reversed() {
            owner[p.offset] = buckets.count
            size += p.value.byteCount
            members += 1
            if size >= bucketBytes || p.offset == 0 {
                buckets.append(p.offset..<hi)
                counts.append(members)
                hi = p.offset
                size = 0
                members = 0
            }
        }
        self.buckets = buckets
        bucketOfOffset = owner
        parametersPerBucket = counts
        worker = (overlap && comm.size > 1) ? CommunicationThread(comm.duplicate()) : nil
        pending = counts
    }

    /// Marks the start of a backward pass.
    public func begin() {
        pending = parametersPerBucket
    }

    /// Called by the network as each parameter's gradient becomes final.
    public func parameterReady(_ p: Parameter) {
        guard comm.size > 1, let b = bucketOfOffset[p.offset] else { return }
        pending[b] -= 1
        if pending[b] == 0, let worker {
            worker.submit(gradients.data + buckets[b].lowerBound, count: buckets[b].count, what: label(b))
        }
    }

    /// Waits until every bucket is reduced (or reduces them now when not overlapping).
    public func finish() {
        let t0 = monotonicSeconds()
        if comm.size > 1 {
            if let worker {
                precondition(pending.allSatisfy { $0 == 0 }, "GradientAverager.finish() before every gradient was ready")
                worker.waitUntilIdle()
            } else {
                for b in buckets.indices { comm.allreduceSum(gradients.data + buckets[b].lowerBound, count: buckets[b].count, what: label(b)) }
            }
        }
        exposedSeconds = monotonicSeconds() - t0
    }

    deinit { worker?.stop() }

    private func label(_ bucket: Int) -> String { "gradient bucket \(bucket + 1) of \(buckets.count)" }
}

/// A thread that runs sum-allreduces, in submission order, on its own communicator, until `stop()`.
final class CommunicationThread: @unchecked Sendable {
    private let comm: Communicator
    private let condition = NSCondition()
    private var queue: [(data: UnsafeMutablePointer<Float>, count: Int, what: String)] = []
    private var busy = false
    private var stopping = false
    private var running = true

    init(_ comm: Communicator) {
        self.comm = comm
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "gradient-allreduce"
        thread.start()
    }

    func submit(_ data: UnsafeMutablePointer<Float>, count: Int, what: String) {
        condition.lock()
        queue.append((data, count, what))
        condition.signal()
        condition.unlock()
    }

    func waitUntilIdle() {
        condition.lock()
        while !queue.isEmpty || busy { condition.wait() }
        condition.unlock()
    }

    /// Ends the thread once the queue is empty, and waits until it has ended.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while running { condition.wait() }
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                running = false
                condition.broadcast()
                condition.unlock()
                return
            }
            let job = queue.removeFirst()
            busy = true
            condition.unlock()
            comm.allreduceSum(job.data, count: job.count, what: job.what)
            condition.lock()
            busy = false
            condition.broadcast()
            condition.unlock()
        }
    }
}

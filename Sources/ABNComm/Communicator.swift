import Foundation
import ABNTensor

/// The collectives the trainer needs, over all replicas of a job. Every rank must make the
/// same calls in the same order. `what` names the data for the watchdog's message (e.g. "the
/// forward statistics of stage2.0.bn1").
public protocol Communicator: AnyObject {
    /// This replica's index, 0..<size.
    var rank: Int { get }
    /// Number of replicas.
    var size: Int { get }

    /// Replaces each element with its sum over all ranks (the same result on every rank).
    func allreduceSum(_ values: UnsafeMutablePointer<Double>, count: Int, what: String)
    func allreduceSum(_ values: UnsafeMutablePointer<Float>, count: Int, what: String)
    /// Replaces each element with its maximum over all ranks.
    func allreduceMax(_ values: UnsafeMutablePointer<Double>, count: Int, what: String)
    /// Merges packed per-channel moments [count, mean (C), M2 (C)] of all ranks with Chan's
    /// formula, in ONE collective of 1 + 2C Doubles; every rank gets the merged moments.
    func allreduceMoments(_ packed: UnsafeMutablePointer<Double>, channels: Int, what: String)
    /// Copies `bytes` bytes from `root` to every rank.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, what: String)
    /// Every rank's `value`, indexed by rank.
    func allgather(_ value: Int64, what: String) -> [Int64]
    /// On `root`: the concatenation over ranks of each rank's `count` Floats (counts may
    /// differ); elsewhere an empty array.
    func gather(_ values: UnsafePointer<Float>, count: Int, root: Int, what: String) -> [Float]
    func barrier(what: String)
    /// A communicator over the same ranks whose traffic never mixes with this one's (for a
    /// communication thread).
    func duplicate() -> Communicator
    /// Ends the whole job (every rank) with `code`.
    func abort(code: Int32) -> Never
}

extension Communicator {
    /// Broadcasts a tensor's elements from `root`.
    public func broadcast(_ tensor: Tensor, root: Int = 0, what: String) {
        broadcast(UnsafeMutableRawPointer(tensor.data), bytes: tensor.byteCount, root: root, what: what)
    }

    public var isRoot: Bool { rank == 0 }
}

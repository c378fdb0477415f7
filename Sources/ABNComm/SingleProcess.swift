import Foundation

/// One process and no MPI: collectives leave values unchanged.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ values: UnsafeMutablePointer<Double>, count: Int, what: String) {}
    public func allreduceSum(_ values: UnsafeMutablePointer<Float>, count: Int, what: String) {}
    public func allreduceMax(_ values: UnsafeMutablePointer<Double>, count: Int, what: String) {}
    public func allreduceMoments(_ packed: UnsafeMutablePointer<Double>, channels: Int, what: String) {}
    public func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int, what: String) {}
    public func allgather(_ value: Int64, what: String) -> [Int64] { [value] }
    public func gather(_ values: UnsafePointer<Float>, count: Int, root: Int, what: String) -> [Float] {
        Array(UnsafeBufferPointer(start: values, count: count))
    }
    public func barrier(what: String) {}
    public func duplicate() -> Communicator { self }
    public func abort(code: Int32) -> Never { exit(code) }
}

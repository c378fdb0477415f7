import Foundation
import ABNLayers
import ABNTensor

/// The cross-rank `StatisticsReducer`: one collective per norm layer in forward (the Chan
/// merge of [count, mean (C), M2 (C)]) and one in backward (the sum of [sum dy, sum dy*xhat]).
/// It records the seconds spent in these collectives.
///
/// `ABN_SKIP_REDUCTION=LAYER` breaks the synchronization of one layer on purpose, for showing
/// that `abn verify` catches it: the layer takes part in its forward collective but keeps its
/// own rank's statistics.
public final class SynchronizedStatistics: StatisticsReducer {
    private let comm: Communicator
    private static let skipped = ProcessInfo.processInfo.environment["ABN_SKIP_REDUCTION"]
    /// (1 + 2C) packed moments, reused.
    private var packed: [Double] = []
    /// Seconds spent in the collectives since the last `resetTimer()`.
    public private(set) var seconds = 0.0
    /// Collectives made since the last `resetTimer()`.
    public private(set) var collectives = 0

    public init(_ comm: Communicator) {
        self.comm = comm
    }

    public func resetTimer() {
        seconds = 0
        collectives = 0
    }

    public func mergeMoments(count: inout Double, mean: UnsafeMutablePointer<Double>, m2: UnsafeMutablePointer<Double>, channels: Int, layer: String) {
        let t0 = monotonicSeconds()
        if packed.count < 1 + 2 * channels { packed = [Double](repeating: 0, count: 1 + 2 * channels) }
        packed.withUnsafeMutableBufferPointer { p in
            let b = p.baseAddress!
            b[0] = count
            (b + 1).update(from: mean, count: channels)
            (b + 1 + channels).update(from: m2, count: channels)
            comm.allreduceMoments(b, channels: channels, what: "the batch statistics of \(layer) (forward)")
            if layer == Self.skipped { return }
            count = b[0]
            mean.update(from: b + 1, count: channels)
            m2.update(from: b + 1 + channels, count: channels)
        }
        seconds += monotonicSeconds() - t0
        collectives += 1
    }

    public func sum(_ values: UnsafeMutablePointer<Double>, count: Int, layer: String) {
        let t0 = monotonicSeconds()
        comm.allreduceSum(values, count: count, what: "the gradient sums of \(layer) (backward)")
        seconds += monotonicSeconds() - t0
        collectives += 1
    }
}

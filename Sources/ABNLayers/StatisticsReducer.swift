/// Combines a norm layer's per-channel statistics across the replicas of a data-parallel job,
/// so that N replicas with B samples each normalize as one process with N*B samples would.
///
/// `ABNLayers` knows nothing of MPI: the single-process `LocalReducer` leaves values as they
/// are, and `ABNComm` supplies a reducer over MPI. Every replica must call the reducer of every
/// layer, in the same order, even when it holds no samples; `layer` names the norm layer.
public protocol StatisticsReducer: AnyObject {
    /// Forward: on entry `count` (values per channel), `mean` (C) and `m2` (C, sums of squared
    /// deviations from the mean) are this replica's; on return they are those of all replicas.
    func mergeMoments(count: inout Double, mean: UnsafeMutablePointer<Double>, m2: UnsafeMutablePointer<Double>, channels: Int, layer: String)

    /// Backward: replaces `values` with their element-wise sum over all replicas.
    func sum(_ values: UnsafeMutablePointer<Double>, count: Int, layer: String)
}

/// One replica: the statistics are already global.
public final class LocalReducer: StatisticsReducer {
    public init() {}
    public func mergeMoments(count: inout Double, mean: UnsafeMutablePointer<Double>, m2: UnsafeMutablePointer<Double>, channels: Int, layer: String) {}
    public func sum(_ values: UnsafeMutablePointer<Double>, count: Int, layer: String) {}
}

/// Merges two sets of per-channel moments with Chan et al.'s parallel formula:
/// n = na + nb, mean = mean_a + (mean_b - mean_a) * nb / n,
/// M2 = M2_a + M2_b + (mean_b - mean_a)^2 * na * nb / n. Stable, and exact for empty sets.
/// `a` (1 + 2C: count, means, M2s) receives the result.
public func mergeMomentsChan(into a: UnsafeMutablePointer<Double>, _ b: UnsafePointer<Double>, channels: Int) {
    let na = a[0], nb = b[0]
    let n = na + nb
    guard nb > 0 else { return }
    guard na > 0 else {
        a.update(from: b, count: 1 + 2 * channels)
        return
    }
    for c in 0..<channels {
        let delta = b[1 + c] - a[1 + c]
        a[1 + c] += delta * nb / n
        a[1 + channels + c] += b[1 + channels + c] + delta * delta * na * nb / n
    }
    a[0] = n
}

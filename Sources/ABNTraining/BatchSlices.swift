/// How a global batch is divided among ranks: rank r takes `counts[r]` consecutive samples.
public struct BatchSlices: Sendable, Equatable {
    public let counts: [Int]

    /// As even as possible: the first `batch % ranks` ranks take one more.
    public init(even batch: Int, ranks: Int) {
        counts = (0..<ranks).map { batch / ranks + ($0 < batch % ranks ? 1 : 0) }
    }

    /// Explicit counts (e.g. for tests of uneven or empty ranks).
    public init(counts: [Int]) { self.counts = counts }

    public var total: Int { counts.reduce(0, +) }

    /// The positions in the global batch that rank `rank` takes.
    public func range(rank: Int) -> Range<Int> {
        let start = counts[..<rank].reduce(0, +)
        return start..<start + counts[rank]
    }
}

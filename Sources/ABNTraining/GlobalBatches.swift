import ABNTensor

/// Turns a step number into the step's global batch: a permutation of the training set per
/// epoch, drawn from the seed, cut into batches of `globalBatch` (the last partial batch of an
/// epoch is dropped). The batches do not depend on the world size; rank r takes its slice.
public struct GlobalBatches: Sendable {
    public let samples: Int
    public let globalBatch: Int
    public let seed: UInt64

    public init(samples: Int, globalBatch: Int, seed: UInt64) throws {
        guard globalBatch >= 1, samples >= globalBatch else {
            throw TrainingError("train.global_batch is \(globalBatch) but the training set has \(samples) samples; use a batch between 1 and \(samples).")
        }
        self.samples = samples
        self.globalBatch = globalBatch
        self.seed = seed
    }

    public var stepsPerEpoch: Int { samples / globalBatch }

    /// The epoch a global step belongs to.
    public func epoch(ofStep step: Int) -> Int { step / stepsPerEpoch }

    /// The sample order of an epoch (Fisher-Yates from a generator seeded by seed and epoch).
    public func permutation(epoch: Int) -> [Int] {
        var order = Array(0..<samples)
        var rng = SplitMix64(seed: mixSeed(seed, 0x5A4D_504C, UInt64(epoch)))
        for i in stride(from: samples - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }

    /// Sample indices of global step `step`, given its epoch's permutation.
    public func batch(step: Int, permutation: [Int]) -> [Int] {
        let start = (step % stepsPerEpoch) * globalBatch
        return Array(permutation[start..<start + globalBatch])
    }
}

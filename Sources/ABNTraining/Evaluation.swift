import ABNComm
import ABNTensor
import Foundation

/// Test loss and accuracy over a dataset split evenly across ranks (each rank evaluates its
/// shard in eval mode; the sums are reduced). Eval mode makes no collective inside the
/// layers, so shards of different sizes are fine.
public func evaluate(_ replica: Replica, on data: FashionMNIST, pipeline: ImagePipeline, batch: Int = 500) throws -> (loss: Double, accuracy: Double) {
    let comm = replica.comm
    let shard = BatchSlices(even: data.count, ranks: comm.size).range(rank: comm.rank)
    let wasTraining = replica.net.training
    replica.net.training = false
    defer { replica.net.training = wasTraining }
    var sums = [0.0, 0.0]  // loss sum, correct predictions
    var start = shard.lowerBound
    while start < shard.upperBound {
        let indices = Array(start..<min(start + batch, shard.upperBound))
        let (images, labels) = pipeline.batch(data, indices: indices, epoch: nil)
        let logits = try replica.net.forward(images)
        sums[0] += softmaxCrossEntropy(dLogits: nil, logits: logits, labels: labels, normalizer: 1)
        let k = logits.shape[1]
        for (i, label) in labels.enumerated() {
            let row = logits.data + i * k
            var best = 0
            for j in 1..<k where row[j] > row[best] { best = j }
            if best == label { sums[1] += 1 }
        }
        start += batch
    }
    comm.allreduceSum(&sums, count: 2)
    return (sums[0] / Double(data.count), sums[1] / Double(data.count))
}

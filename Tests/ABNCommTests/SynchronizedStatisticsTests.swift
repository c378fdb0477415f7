import ABNComm
import ABNLayers
import Foundation
import Testing

@Suite("Synchronized statistics")
struct SynchronizedStatisticsTests {
    @Test("one collective per layer and direction, named after the layer")
    func collectivesNamed() {
        let comm = RecordingCommunicator(size: 2)
        let statistics = SynchronizedStatistics(comm)
        var count = 4.0
        var mean = [1.0, 2.0], m2 = [3.0, 4.0], sums = [1.0, 2.0, 3.0, 4.0]
        statistics.mergeMoments(count: &count, mean: &mean, m2: &m2, channels: 2, layer: "stage1.0.bn1")
        statistics.sum(&sums, count: 4, layer: "stage1.0.bn1")
        #expect(comm.reductions.map(\.count) == [5, 4])
        #expect(comm.reductions.map(\.what) == ["the batch statistics of stage1.0.bn1 (forward)", "the gradient sums of stage1.0.bn1 (backward)"])
        #expect(statistics.collectives == 2)
    }

    @Test("Chan's merge of two parts equals the moments of the whole, and an empty part changes nothing")
    func chanMerge() {
        let x: [Double] = [3, -1, 4, 1.5, -5, 9, 2.25, 6], y: [Double] = [100, 101.5, 99, 98.25, 102]
        func moments(_ v: [Double]) -> [Double] {
            let mean = v.reduce(0, +) / Double(v.count)
            return [Double(v.count), mean, v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }]
        }
        var merged = moments(x)
        let other = moments(y)
        mergeMomentsChan(into: &merged, other, channels: 1)
        let whole = moments(x + y)
        #expect(merged[0] == whole[0])
        #expect(abs(merged[1] - whole[1]) <= 1e-12 * abs(whole[1]) && abs(merged[2] - whole[2]) <= 1e-12 * whole[2])
        var unchanged = moments(x)
        mergeMomentsChan(into: &unchanged, [0, 0, 0], channels: 1)
        #expect(unchanged == moments(x))
        var fromEmpty: [Double] = [0, 0, 0]
        mergeMomentsChan(into: &fromEmpty, moments(y), channels: 1)
        #expect(fromEmpty == moments(y))
        #expect(merged != moments(x))  // the control: merging changed something
    }
}

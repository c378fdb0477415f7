import ABNLayers
import ABNTensor
import ABNTestSupport
import Testing

@Suite("Dropout keyed by sample")
struct DropoutTests {
    @Test("an image's mask depends only on its key, keeps about 1 - p of the elements and scales them by 1 / (1 - p)")
    func maskFollowsKey() {
        let dropout = Dropout(probability: 0.5)
        let x = randomTensor([3, 4, 50, 50], seed: 1)
        let y = Tensor(uninitialized: x.shape)
        dropout.apply(y, x, imageKeys: [11, 22, 33])
        // the third image alone, with its key, draws the same mask
        let single = x.slice(from: 2 * 10_000, shape: [1, 4, 50, 50]).clone()
        let ySingle = Tensor(uninitialized: single.shape)
        dropout.apply(ySingle, single, imageKeys: [33])
        #expect(Array(y.array[20_000...]) == ySingle.array)
        // another key draws another mask
        let yOther = Tensor(uninitialized: single.shape)
        dropout.apply(yOther, single, imageKeys: [34])
        #expect(yOther.array != ySingle.array)
        let kept = zip(y.array, x.array).filter { $0.0 != 0 }
        #expect(kept.allSatisfy { $0.0 == $0.1 * 2 })
        let fraction = Double(kept.count) / Double(x.count)
        #expect(abs(fraction - 0.5) < 0.01, "kept \(fraction)")  // 3.5 standard deviations of 30,000 draws
    }

    @Test("applied in place to a gradient it zeroes and scales the same elements as in forward")
    func backwardMask() {
        let dropout = Dropout(probability: 0.3)
        let x = Tensor(Array(repeating: 1, count: 2 * 5 * 7 * 7), shape: [2, 5, 7, 7])
        let y = Tensor(uninitialized: x.shape)
        dropout.apply(y, x, imageKeys: [5, 6])
        let g = randomTensor(x.shape, seed: 2)
        let want = zip(g.array, y.array).map { $0 * $1 }
        dropout.apply(g, g, imageKeys: [5, 6])
        #expect(g.array == want)
    }
}

import ABNTensor
import Testing

@Suite("SplitMix64")
struct SplitMix64Tests {
    @Test("skipping n draws leaves the generator where n calls of next() leave it")
    func skip() {
        for n in [0, 1, 2, 7, 1000] {
            var drawn = SplitMix64(seed: 42), skipped = SplitMix64(seed: 42)
            for _ in 0..<n { _ = drawn.next() }
            skipped.skip(n)
            #expect(skipped.next() == drawn.next(), "n = \(n)")
        }
        var other = SplitMix64(seed: 42), control = SplitMix64(seed: 42)
        other.skip(3)
        #expect(other.next() != control.next())  // the control: skipping moves the generator
    }
}

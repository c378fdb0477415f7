import ABNLayers
import ABNTensor
import Testing

@Suite("Parameters and their store")
struct ParameterStoreTests {
    @Test("declared values are the generator's draws in declaration order, however late they are written")
    func declaredValues() throws {
        var rng = SplitMix64(seed: 5)
        let first = Conv2DLayer("a", inChannels: 3, outChannels: 4, kernel: 3, rng: &rng)
        let second = LinearLayer("b", inFeatures: 6, outFeatures: 2, rng: &rng)
        let norm = try NormAct("c", channels: 4, mode: .inplace, activation: .identity)
        let store = ParameterStore(first.allParameters + second.allParameters + norm.allParameters)

        var draws = SplitMix64(seed: 5)
        let std = Float((2.0 / 27.0).squareRoot()), bound = Float(1 / 6.0.squareRoot())
        let convWeight = (0..<108).map { _ in std * draws.nextNormal() }
        let linearWeight = (0..<12).map { _ in -bound + 2 * bound * draws.nextUniform() }
        let linearBias = (0..<2).map { _ in -bound + 2 * bound * draws.nextUniform() }
        #expect(first.weight.value.array == convWeight)
        #expect(second.weight.value.array == linearWeight && second.bias.value.array == linearBias)
        #expect(norm.weight.value.array == [1, 1, 1, 1] && norm.runningVar.value.array == [1, 1, 1, 1])
        #expect(norm.bias.value.array == [0, 0, 0, 0] && norm.runningMean.value.array == [0, 0, 0, 0])
        #expect(store.values.array == convWeight + linearWeight + linearBias + [1, 1, 1, 1, 0, 0, 0, 0])
        #expect(first.weight.value.sharesStorage(with: store.values))
    }

    @Test("a parameter read before its store keeps its values in the store")
    func readBeforeStore() {
        var rng = SplitMix64(seed: 9)
        let layer = Conv2DLayer("a", inChannels: 2, outChannels: 2, kernel: 1, rng: &rng)
        let before = layer.weight.value.array
        layer.weight.value[flat: 0] = 7
        let store = ParameterStore(layer.allParameters)
        #expect(store.values.array == [7] + before.dropFirst())
        #expect(layer.weight.value.sharesStorage(with: store.values))
    }

    @Test("a declared-only store counts its parameters and allocates none of them")
    func declaredOnly() {
        func build() -> ParameterStore {
            var rng = SplitMix64(seed: 1)
            let layers = (0..<4).map { Conv2DLayer("conv\($0)", inChannels: 256, outChannels: 256, kernel: 3, rng: &rng) }
            return ParameterStore(layers.flatMap(\.allParameters))
        }
        let declaredLedger = MemoryLedger(), builtLedger = MemoryLedger()
        let declared = MemoryLedger.$current.withValue(declaredLedger) { ParameterStore.$declaredOnly.withValue(true) { build() } }
        let built = MemoryLedger.$current.withValue(builtLedger) { build() }
        #expect(declared.parameterCount == 4 * 256 * 256 * 9 && built.parameterCount == declared.parameterCount)
        #expect(declaredLedger.peakBytes == 0)
        #expect(builtLedger.peakBytes >= 2 * 4 * built.parameterCount)  // the control: values and gradients
    }
}

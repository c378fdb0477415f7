import ABNLayers
import ABNTensor
import ABNTestSupport
import Foundation
import Testing

/// A norm layer with weights (some negative), biases and its parameter store.
func makeLayer(channels: Int, mode: NormMode, activation: Activation, seed: UInt64) throws -> (NormAct, ParameterStore) {
    let layer = try NormAct("bn", channels: channels, mode: mode, activation: activation)
    let store = ParameterStore(layer.allParameters)
    var rng = SplitMix64(seed: seed)
    for c in 0..<channels {
        let w = 0.5 + rng.nextUniform()
        layer.weight.value[flat: c] = c % 2 == 0 ? -w : w
        layer.bias.value[flat: c] = rng.nextUniform() - 0.5
    }
    return (layer, store)
}

@Suite("Norm layer")
struct NormActTests {
    @Test("ELU far below zero (z rounds to -alpha, its inverse to -inf) leaves every gradient finite", arguments: NormMode.allCases)
    func eluSaturation(mode: NormMode) throws {
        let (layer, _) = try makeLayer(channels: 2, mode: mode, activation: .elu(alpha: 1), seed: 4)
        layer.weight.value[flat: 0] = 1
        layer.bias.value[flat: 0] = -30  // channel 0 saturates: y = xhat - 30
        let x = randomTensor([4, 2, 3, 3], seed: 5)
        _ = try layer.forward(x)
        let dx = layer.backward(randomTensor([4, 2, 3, 3], seed: 6))
        let nonFinite = dx.array.filter { !$0.isFinite }.count
        let parameterGradients = layer.weight.gradient!.array + layer.bias.gradient!.array
        #expect(nonFinite == 0, "dx has \(nonFinite) non-finite values")
        #expect(parameterGradients.allSatisfy { $0.isFinite }, "\(parameterGradients)")
    }

    @Test("backward equals finite differences, negative weights included",
          arguments: NormMode.allCases, [Activation.elu(alpha: 1), .identity, .leakyReLU(slope: 0.2)])
    func finiteDifferences(mode: NormMode, activation: Activation) throws {
        let shape = [3, 4, 3, 2]
        let (layer, store) = try makeLayer(channels: 4, mode: mode, activation: activation, seed: 1)
        let x0 = randomTensor(shape, seed: 2, scale: 2)
        let r = randomTensor(shape, seed: 3)
        let loss = { (x: Tensor) -> Double in
            let input = x.clone()  // inplace mode overwrites its input
            return dot(try! layer.forward(input), r)
        }
        let z = try layer.forward(x0.clone())
        let dx = layer.backward(r.clone())
        let dWeight = layer.weight.gradient!.array, dBias = layer.bias.gradient!.array
        // Leaky ReLU has a kink at 0, where differences straddling it are wrong: check dx only
        // away from it, and take small steps so that perturbing a weight moves no element across.
        let preActivation = z.array.map { $0 >= 0 ? $0 : $0 / activation.parameter }
        let kinked = activation.name == "leaky_relu"
        let h: Float = kinked ? 1e-3 : 1e-2
        let smooth = Array(0..<x0.count).filter { !kinked || abs(preActivation[$0]) > 0.05 }
        #expect(smooth.count > x0.count / 2)
        let numericDx = numericalGradient(of: { loss(x0) }, at: x0, indices: smooth, step: h)
        expectClose(smooth.map { Double(dx[flat: $0]) }, numericDx, rtol: 2e-2, atol: 2e-3, "dx, \(mode) \(activation)")
        let numericW = numericalGradient(of: { loss(x0) }, at: layer.weight.value, indices: Array(0..<4), step: h)
        expectClose(dWeight.map(Double.init), numericW, rtol: 2e-2, atol: 2e-3, "dweight, \(mode) \(activation)")
        let numericB = numericalGradient(of: { loss(x0) }, at: layer.bias.value, indices: Array(0..<4), step: h)
        expectClose(dBias.map(Double.init), numericB, rtol: 2e-2, atol: 2e-3, "dbias, \(mode) \(activation)")
        _ = store
    }

    @Test("data with mean 500 and standard deviation 0.05 gets the right variance", arguments: NormMode.allCases)
    func stableVariance(mode: NormMode) throws {
        let layer = try NormAct("bn", channels: 2, mode: mode, activation: .identity, momentum: 1)
        let store = ParameterStore(layer.allParameters)
        var rng = SplitMix64(seed: 4)
        let x = Tensor(uninitialized: [64, 2, 4, 4])
        x.fillNormal(std: 0.05, mean: 500, using: &rng)
        // reference: two-pass in Double over the same Float values
        for c in 0..<2 {
            var values: [Double] = []
            for n in 0..<64 { for j in 0..<16 { values.append(Double(x[flat: (n * 2 + c) * 16 + j])) } }
            let mean = values.reduce(0, +) / Double(values.count)
            let unbiased = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
            _ = try layer.forward(x.clone())
            let got = Double(layer.runningVar.value[flat: c])
            #expect(abs(got - unbiased) <= 1e-4 * unbiased, "channel \(c): running_var \(got), want \(unbiased)")
            #expect(abs(Double(layer.runningMean.value[flat: c]) - mean) < 1e-3)
        }
        _ = store
    }

    @Test("statistics of one 1024x1024 plane (segmentation-sized) stay accurate", arguments: [NormMode.inplace, .standard])
    func largePlane(mode: NormMode) throws {
        let layer = try NormAct("bn", channels: 1, mode: mode, activation: .identity, momentum: 1)
        let store = ParameterStore(layer.allParameters)
        var rng = SplitMix64(seed: 9)
        let x = Tensor(uninitialized: [1, 1, 1024, 1024])
        x.fillNormal(std: 1, mean: 3, using: &rng)
        var values: [Double] = []
        for j in 0..<x.count { values.append(Double(x[flat: j])) }
        let mean = values.reduce(0, +) / Double(values.count)
        let unbiased = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
        _ = try layer.forward(x)
        let gotMean = Double(layer.runningMean.value[flat: 0]), gotVar = Double(layer.runningVar.value[flat: 0])
        #expect(abs(gotMean - mean) <= 1e-6 * abs(mean), "running_mean \(gotMean), want \(mean)")
        #expect(abs(gotVar - unbiased) <= 1e-6 * unbiased, "running_var \(gotVar), want \(unbiased)")
        _ = store
    }

    @Test("every vector level the processor runs gives bit-identical outputs and gradients", arguments: NormMode.allCases)
    func vectorLevels(mode: NormMode) throws {
        try withProcessSettings {
            let x = randomTensor([3, 4, 5, 7], seed: 31)
            let initial = VectorLevel.current
            var outputs: [String: [Float]] = [:]
            for level in VectorLevel.supported {
                #expect(VectorLevel.select(level))
                let layer = try NormAct("bn", channels: 4, mode: mode, activation: .leakyReLU(slope: 0.1))
                let store = ParameterStore(layer.allParameters)
                let z = try layer.forward(x.clone()).array
                let dx = layer.backward(randomTensor(x.shape, seed: 32)).array
                outputs[level] = z + dx + store.gradients.array
            }
            VectorLevel.select(initial)
            for level in VectorLevel.supported { #expect(outputs[level] == outputs["baseline"], "\(level)") }
            #expect(outputs["baseline"]!.contains { $0 < 0 } && outputs["baseline"]!.contains { $0 > 0 })  // both branches taken
        }
    }

    @Test("invalid settings are rejected with a message")
    func errors() throws {
        #expect(throws: LayerError.self) { try Activation(name: "leaky_relu", parameter: 0) }
        #expect(throws: LayerError.self) { try Activation(name: "elu", parameter: -1) }
        do {
            _ = try Activation(name: "relu", parameter: nil)
            Issue.record("relu was accepted")
        } catch let error as LayerError {
            #expect(error.description.contains("leaky_relu"))
        }
        // training on one value per channel
        let layer = try NormAct("stage1.0.bn1", channels: 3, mode: .inplace, activation: .identity)
        let store = ParameterStore(layer.allParameters)
        do {
            _ = try layer.forward(Tensor(zeros: [1, 3, 1, 1]))
            Issue.record("a batch of one value per channel was accepted in training")
        } catch let error as LayerError {
            #expect(error.description.contains("stage1.0.bn1") && error.description.contains("at least 2"))
        }
        _ = store
    }

    @Test("a channel mismatch stops with a message naming both")
    func channelMismatch() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let layer = try NormAct("bn", channels: 3, mode: .inplace, activation: .identity)
            let store = ParameterStore(layer.allParameters)
            _ = try layer.forward(Tensor(zeros: [2, 4, 2, 2]))
            _ = store
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("[2, 4, 2, 2]") && stderr.contains("3 channels"), "stderr was: \(stderr)")
    }
}

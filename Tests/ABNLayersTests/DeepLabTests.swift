import ABNLayers
import ABNTensor
import ABNTestSupport
import Testing

/// A small DeepLab: 3 input channels, widths 4..8, head width 4, 5 classes.
func smallDeepLab(mode: NormMode, outputStride: Int = 16, seed: UInt64 = 3, activation: Activation = .leakyReLU(slope: 0.01)) throws -> DeepLab {
    try DeepLab(shape: DeepLabShape(inChannels: 3, widths: [4, 6, 8, 8], blocks: [1, 1, 1, 1], outputStride: outputStride, headWidth: 4,
                                    dilations: [1, 2, 3], classes: 5),
                norm: NormSettings(mode: mode, activation: activation), seed: seed)
}

/// Masks for N images of h x w: class (y + x) % classes, with every seventh pixel ignored.
func stripedMasks(_ n: Int, _ h: Int, _ w: Int, classes: Int) -> [UInt8] {
    (0..<n * h * w).map { i in i % 7 == 3 ? 255 : UInt8(((i / w) % h + i % w) % classes) }
}

@Suite("DeepLabV3 network")
struct DeepLabTests {
    @Test("parameter names follow docs/design.md#segmentation-network; logits come at the output stride; output stride 8 dilates stage 4, 4 stages 3 and 4")
    func namesAndShapes() throws {
        let net = try smallDeepLab(mode: .inplace)
        let names = (net.parameters.parameters + net.parameters.buffers).map(\.name)
        for name in ["stem.weight", "stage1.0.bn1.weight", "stage2.0.proj.weight", "stage4.0.conv2.weight", "body_norm.running_var",
                     "head.map_convs.0.weight", "head.map_convs.3.weight", "head.map_bn.weight", "head.global_pooling_conv.weight",
                     "head.global_pooling_bn.running_mean", "head.red_conv.weight", "head.pool_red_conv.weight", "head.red_bn.bias",
                     "cls.weight", "cls.bias"] {
            #expect(names.contains(name), "missing \(name)")
        }
        #expect(net.parameters.parameters.first { $0.name == "head.map_bn.weight" }?.shape == [16])
        #expect(net.parameters.parameters.first { $0.name == "head.map_convs.2.weight" }?.shape == [4, 8, 3, 3])
        let images = randomTensor([2, 3, 37, 29], seed: 1)
        #expect(try net.forward(images).shape == [2, 5, 3, 2])  // 37 -> 19 -> 10 -> 5 -> 3
        let os8 = try smallDeepLab(mode: .inplace, outputStride: 8)
        #expect(try os8.forward(images).shape == [2, 5, 5, 4])
        #expect(os8.forwardMultiplyAdds(height: 64, width: 64) > net.forwardMultiplyAdds(height: 64, width: 64))
        let os4 = try smallDeepLab(mode: .inplace, outputStride: 4)
        #expect(try os4.forward(images).shape == [2, 5, 10, 8])  // 37 -> 19 -> 10
        #expect(os4.forwardMultiplyAdds(height: 64, width: 64) > os8.forwardMultiplyAdds(height: 64, width: 64))
    }

    /// With the identity activation the loss is smooth, so finite differences are exact to
    /// their step (leaky ReLU's kinks, crossed by thousands of activations when a body weight
    /// moves, make them off by several percent); the activations themselves are checked
    /// against PyTorch by the golden cases, and the modes against each other below.
    @Test("backward equals finite differences of the pixel loss, through the head's branches and the body")
    func gradients() throws {
        let net = try smallDeepLab(mode: .inplace, activation: .identity)
        let images = randomTensor([2, 3, 20, 24], seed: 5)
        let masks = stripedMasks(2, 20, 24, classes: 5)
        func loss(_ dLogits: Tensor?) throws -> Double {
            let input = images.clone()  // the stem reads it; keep the original for finite differences
            let logits = try net.forward(input)
            let value = upsampledPixelCrossEntropy(dLogits: dLogits, logits: logits, height: 20, width: 24, masks: masks, ignore: 255, normalizer: 100)
            if let dLogits { net.backward(dLogits) }
            return value
        }
        _ = try loss(Tensor(zeros: [2, 5, 2, 2]))
        let store = net.parameters
        for name in ["cls.weight", "cls.bias", "head.red_bn.weight", "head.pool_red_conv.weight", "head.global_pooling_bn.weight",
                     "head.global_pooling_conv.weight", "head.red_conv.weight", "head.map_bn.bias", "head.map_convs.0.weight",
                     "head.map_convs.3.weight", "body_norm.weight", "stage4.0.conv1.weight", "stage2.0.proj.weight", "stem.weight"] {
            let p = try #require(store.parameters.first { $0.name == name })
            let indices = sampleIndices(p.value.count, count: 4, seed: UInt64(name.count))
            let analytic = indices.map { Double(p.gradient![flat: $0]) }
            let numeric = numericalGradient(of: { (try? loss(nil)) ?? .nan }, at: p.value, indices: indices, step: 1e-2)
            expectClose(analytic, numeric, rtol: 3e-2, atol: 2e-4, name)
        }
    }

    @Test("inplace, standard and checkpoint agree on outputs, gradients and running statistics")
    func modesAgree() throws {
        var results: [(out: [Float], grads: [Float], buffers: [Float])] = []
        for mode in NormMode.allCases {
            let net = try smallDeepLab(mode: mode, outputStride: 8, seed: 9)
            let out = try net.forward(randomTensor([2, 3, 24, 24], seed: 4))
            let d = Tensor(zeros: out.shape)
            upsampledPixelCrossEntropy(dLogits: d, logits: out, height: 24, width: 24, masks: stripedMasks(2, 24, 24, classes: 5), ignore: 255,
                                       normalizer: 1000)
            net.backward(d)
            results.append((out.array, net.parameters.gradients.array, net.parameters.bufferValues.array))
        }
        for i in 1..<results.count {
            let mode = NormMode.allCases[i]
            expectClose(results[i].out, results[0].out, rtol: 1e-4, atol: 1e-5, "output, \(mode) vs inplace")
            expectClose(results[i].grads, results[0].grads, rtol: 1e-3, atol: 1e-6, "gradients, \(mode) vs inplace")
            expectClose(results[i].buffers, results[0].buffers, rtol: 1e-5, atol: 1e-6, "running statistics, \(mode) vs inplace")
        }
        #expect(results[0].grads.contains { $0 != 0 })
    }

    @Test("inplace keeps at most 0.55 of standard's bytes for backward, through the head")
    func savedBytes() throws {
        var saved: [NormMode: Int] = [:]
        for mode in [NormMode.inplace, .standard] {
            let ledger = MemoryLedger()
            try MemoryLedger.$current.withValue(ledger) {
                let net = try DeepLab(shape: DeepLabShape(inChannels: 3, widths: [16, 32, 64, 64], blocks: [2, 2, 2, 2], outputStride: 8,
                                                          headWidth: 32, dilations: [2, 4, 6], classes: 11), norm: NormSettings(mode: mode))
                let images = randomTensor([2, 3, 64, 64], seed: 2)
                let warmUp = try net.forward(images)  // the convolutions' scratch reaches its size
                net.backward(Tensor(zeros: warmUp.shape))
                let before = ledger.liveBytes
                let logits = try net.forward(images)
                saved[mode] = ledger.liveBytes - before - logits.byteCount
            }
        }
        let ratio = Double(saved[.inplace]!) / Double(saved[.standard]!)
        #expect(ratio <= 0.55, "inplace keeps \(saved[.inplace]!) bytes, standard \(saved[.standard]!): ratio \(ratio)")
    }
}

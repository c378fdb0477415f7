import ABNLayers
import ABNTensor
import ABNTestSupport
import Testing

/// One training forward and backward of a network on a fixed batch; returns the logits.
func runStep(_ net: PreActResNet, batch: Int, size: Int, seed: UInt64) throws -> [Float] {
    let images = randomTensor([batch, net.shape.inChannels, size, size], seed: seed)
    let labels = (0..<batch).map { $0 % net.shape.classes }
    let logits = try net.forward(images)
    let dLogits = Tensor(zeros: logits.shape)
    softmaxCrossEntropy(dLogits: dLogits, logits: logits, labels: labels, normalizer: Double(batch))
    net.backward(dLogits)
    return logits.array
}

@Suite("Reference network")
struct NetworkTests {
    let small = NetworkShape(widths: [4, 8, 8], blocks: [2, 2, 2])

    @Test("parameter names and count follow the PyTorch peer")
    func names() throws {
        let net = try PreActResNet(norm: NormSettings(mode: .inplace))
        #expect(net.parameters.parameterCount == 695_658)
        let names = Set((net.parameters.parameters + net.parameters.buffers).map(\.name))
        for name in ["stem.weight", "stage1.0.bn1.weight", "stage1.0.conv1.weight", "stage2.0.proj.weight",
                     "stage3.1.bn2.running_mean", "head_norm.running_var", "fc.weight", "fc.bias"] {
            #expect(names.contains(name), "missing \(name)")
        }
        #expect(!names.contains("stage1.0.proj.weight"))
        #expect(net.forwardMultiplyAdds(height: 28, width: 28) * 128 * 6 / 1e9 > 61.7)
    }

    @Test("inplace, standard and checkpoint agree on outputs, gradients and running statistics")
    func modesAgree() throws {
        var results: [(logits: [Float], gradients: [Float], buffers: [Float], input: [Float])] = []
        for mode in NormMode.allCases {
            let net = try PreActResNet(shape: small, norm: NormSettings(mode: mode), seed: 7)
            let logits = try runStep(net, batch: 6, size: 12, seed: 8)
            results.append((logits, net.parameters.gradients.array, net.parameters.bufferValues.array, []))
        }
        for i in 1..<results.count {
            let mode = NormMode.allCases[i]
            expectClose(results[i].logits, results[0].logits, rtol: 1e-5, atol: 1e-6, "logits, \(mode) vs inplace")
            expectClose(results[i].gradients, results[0].gradients, rtol: 1e-5, atol: 1e-6, "gradients, \(mode) vs inplace")
            expectClose(results[i].buffers, results[0].buffers, rtol: 1e-5, atol: 1e-6, "running statistics, \(mode) vs inplace")
        }
        #expect(results[0].gradients.contains { $0 != 0 })
    }

    @Test("the reference network keeps at most 0.52 of standard's bytes for backward in inplace mode")
    func savedBytes() throws {
        var saved: [NormMode: Int] = [:]
        for mode in NormMode.allCases {
            let ledger = MemoryLedger()
            try MemoryLedger.$current.withValue(ledger) {
                let net = try PreActResNet(norm: NormSettings(mode: mode))
                _ = try runStep(net, batch: 8, size: 28, seed: 1)  // warm-up: scratch reaches its size
                let images = randomTensor([8, 1, 28, 28], seed: 2)
                let before = ledger.liveBytes
                _ = try net.forward(images)
                saved[mode] = ledger.liveBytes - before
            }
        }
        let ratio = Double(saved[.inplace]!) / Double(saved[.standard]!)
        #expect(ratio <= 0.52, "inplace keeps \(saved[.inplace]!) bytes, standard \(saved[.standard]!): ratio \(ratio)")
        #expect(saved[.checkpoint]! < saved[.standard]!)
    }
}

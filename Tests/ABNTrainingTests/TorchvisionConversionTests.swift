import ABNLayers
import ABNTensor
import ABNTraining
import Foundation
import Testing

/// Tests/Fixtures/torchvision, where python/make_conversion_fixture.py writes the conversion fixtures.
let torchvisionFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/torchvision")

/// A fixture's tensors and metadata (no checksum: PyTorch wrote it).
func torchvisionFixture(_ name: String) throws -> (entries: [String: Safetensors.Entry], metadata: [String: String]) {
    let url = torchvisionFixtures.appendingPathComponent(name)
    return try Safetensors.decode(Data(contentsOf: url), source: url.path, requireChecksum: false)
}

/// Copies `entries` into every parameter and running statistic of `net`, by name.
func loadWeights(_ entries: [String: Safetensors.Entry], into net: any Network) throws {
    for p in net.parameters.parameters + net.parameters.buffers {
        let e = try #require(entries[p.name], "no tensor \(p.name)")
        try #require(e.shape == p.shape, "\(p.name): shape \(e.shape), the network's \(p.shape)")
        p.value.copy(from: Tensor(e.values, shape: e.shape))
    }
}

@Suite("torchvision conversion")
struct TorchvisionConversionTests {
    /// The largest |a - b|.
    func distance(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0 }

    @Test("converted weights give PyTorch's float64 logits of the LeakyReLU network within 10 x its float32 error; unconverted ones miss",
          arguments: NormMode.allCases)
    func logits(mode: NormMode) throws {
        let state = try torchvisionFixture("conversion_resnet50_w2.safetensors").entries
        let want = try torchvisionFixture("conversion_resnet50_w2_want.safetensors").entries
        let input = try #require(want["input"]), logits = try #require(want["want.logits"]).values
        let asTrained = try #require(want["want.logits_as_trained"]).values
        let floor = Double(try #require(want["floor.logits"]).values[0])
        let tolerance = 10 * floor + 4 * Double((logits.map(abs).max() ?? 0).ulp)
        func evaluate(_ entries: [String: Safetensors.Entry]) throws -> [Float] {
            let net = try ResNetShape(depth: .resnet50, baseWidth: 2, inChannels: 3, classes: 5)
                .classifier(norm: NormSettings(mode: mode, activation: .leakyReLU(slope: 0.01)))
            try loadWeights(entries, into: net)
            net.training = false
            return try net.forward(Tensor(input.values, shape: input.shape)).array
        }
        let converted = try evaluate(TorchvisionConversion.convert(state, eps: 1e-5).entries)
        // want.logits has the one weight below eps at the magnitude eps, as abn keeps it
        let off = distance(converted, logits)
        #expect(off <= tolerance, "[\(mode)] converted logits off by \(off), tolerance \(tolerance) (PyTorch float32 \(floor))")

        // that weight's own effect: the network as trained differs by what PyTorch measured
        let effect = distance(logits, asTrained), fromTrained = distance(converted, asTrained)
        #expect(effect > 10 * tolerance, "the fixture's weight below eps has no measurable effect")
        #expect(abs(fromTrained - effect) <= tolerance)

        let unconverted = distance(try evaluate(state), logits)
        print("torchvision conversion [\(mode)]: logits off by \(off), tolerance \(tolerance); unconverted off by \(unconverted); "
              + "the weight below eps moves them by \(fromTrained) (PyTorch: \(effect))")
        #expect(unconverted > 1000 * tolerance, "[\(mode)] the state dict copied as it is misses by only \(unconverted)")
    }

    @Test("the report counts the fixture's negative weights, layers and weights below eps")
    func report() throws {
        let (state, _) = try torchvisionFixture("conversion_resnet50_w2.safetensors")
        let known = try torchvisionFixture("conversion_resnet50_w2_want.safetensors").metadata
        let report = try TorchvisionConversion.convert(state, eps: 1e-5).report
        #expect(state.keys.allSatisfy { !$0.hasSuffix("num_batches_tracked") }, "num_batches_tracked was not skipped")
        #expect(String(report.tensors) == known["tensors"] && String(report.normLayers) == known["norm_layers"])
        #expect(String(report.foldedWeights) == known["negative_weights"])
        #expect(report.foldedLayers.joined(separator: ",") == known["folded_layers"])
        #expect(String(report.belowEps.count) == known["below_eps"])
        #expect(report.belowEps.first.map { "\($0.layer)[\($0.channel)]" } == "layer4.2.bn3[0]")
        #expect(Double(report.largestBelowEps) == Double(known["below_eps_largest"] ?? ""))
        #expect(report.largestScaleExcess == 1e-5 - report.largestBelowEps)
    }

    /// torchvision's names (names.json) with one channel everywhere: every convolution before a
    /// BN layer, found by the naming rule, is negated, and no other tensor is.
    @Test("every BN layer of torchvision's ResNets and DeepLabV3 finds its convolution",
          arguments: ["resnet18", "resnet34", "resnet50", "resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101"])
    func naming(arch: String) throws {
        let all = try JSONSerialization.jsonObject(with: Data(contentsOf: torchvisionFixtures.appendingPathComponent("names.json"))) as! [String: [[Any]]]
        var entries: [String: Safetensors.Entry] = [:]
        for row in try #require(all[arch]) {
            let name = row[0] as! String, rank = (row[1] as! [Int]).count
            let value: Float = name.hasSuffix(".running_var") || !name.hasSuffix(".weight") || rank > 1 ? 1 : -0.5
            entries[name] = Safetensors.Entry(name: name, shape: Array(repeating: 1, count: rank), values: [value])
        }
        let (converted, report) = try TorchvisionConversion.convert(entries, eps: 1e-5)
        let negated = converted.values.filter { $0.values[0] == -1 }.map(\.name)
        #expect(report.normLayers == report.foldedLayers.count && report.foldedWeights == report.normLayers)
        #expect(negated.count == 2 * report.normLayers, "each BN negates its running mean and its convolution: \(negated.sorted())")
        #expect(negated.allSatisfy { $0.hasSuffix(".running_mean") || entries[$0]!.shape.count == 4 })
        let untouched = entries.keys.filter { entries[$0]!.shape.count == 4 && !negated.contains($0) }.sorted()
        #expect(untouched == (arch.hasPrefix("deeplabv3") ? ["classifier.4.weight"] : []), "convolutions without a BN: \(untouched)")
    }

    func entry(_ name: String, _ shape: [Int], _ value: Float = 1) -> (String, Safetensors.Entry) {
        (name, Safetensors.Entry(name: name, shape: shape, values: Array(repeating: value, count: shape.reduce(1, *))))
    }

    /// A BN layer `bn` of `channels` channels with weight -1.
    func norm(_ bn: String, _ channels: Int) -> [(String, Safetensors.Entry)] {
        [entry(bn + ".weight", [channels], -1), entry(bn + ".bias", [channels]), entry(bn + ".running_mean", [channels]),
         entry(bn + ".running_var", [channels])]
    }

    @Test("a BN without its convolution, or after one of another width, is refused with the names")
    func refusals() throws {
        let cases: [([(String, Safetensors.Entry)], [String])] = [
            (norm("layer1.0.bn2", 4) + [entry("layer1.0.conv1.weight", [4, 4, 3, 3])], ["layer1.0.bn2", "layer1.0.conv2"]),
            (norm("layer1.0.bn1", 4) + [entry("layer1.0.conv1.weight", [8, 4, 3, 3])], ["layer1.0.conv1.weight", "[8, 4, 3, 3]", "4 output channels"]),
            (norm("head.norm", 4), ["head.norm", "torchvision's naming"]),
            (norm("downsample.0", 4), ["downsample.0", "torchvision's naming"]),
            (Array(norm("bn1", 4).dropFirst()) + [entry("conv1.weight", [4, 3, 7, 7])], ["bn1.weight", "missing"]),
        ]
        for (entries, words) in cases {
            do {
                _ = try TorchvisionConversion.convert(Dictionary(uniqueKeysWithValues: entries), eps: 1e-5)
                Issue.record("converted \(entries.map(\.0))")
            } catch let error as TrainingError {
                for word in words { #expect(error.message.contains(word), "\(error.message) does not name \(word)") }
            }
        }
    }

    @Test("a convolution bias is negated with its channel; weights below eps become 0 and are listed")
    func biasAndSmallWeights() throws {
        var entries = Dictionary(uniqueKeysWithValues: norm("classifier.2", 3) + [entry("classifier.1.weight", [3, 1, 1, 1], 2),
                                                                                 entry("classifier.1.bias", [3], 5)])
        entries["classifier.2.weight"] = Safetensors.Entry(name: "classifier.2.weight", shape: [3], values: [-0.5, 2e-6, -3e-6])
        let eps: Float = 1e-5
        let (out, report) = try TorchvisionConversion.convert(entries, eps: eps)
        #expect(out["classifier.1.weight"]?.values == [-2, 2, -2] && out["classifier.1.bias"]?.values == [-5, 5, -5])
        #expect(out["classifier.2.running_mean"]?.values == [-1, 1, -1])
        #expect(out["classifier.2.weight"]?.values == [0.5 - eps, 0, 0])
        #expect(report.foldedWeights == 2 && report.belowEps.map(\.channel) == [1, 2])
        #expect(report.largestBelowEps == 3e-6 && report.largestScaleExcess == eps - 2e-6)
    }

    /// A safetensors file without checksum: (name, dtype, shape, bytes) in order.
    func file(_ tensors: [(String, String, [Int], [UInt8])]) throws -> Data {
        var header: [String: Any] = [:], payload = Data(), offset = 0
        for (name, dtype, shape, bytes) in tensors {
            header[name] = ["dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.count]]
            payload.append(contentsOf: bytes)
            offset += bytes.count
        }
        let json = try JSONSerialization.data(withJSONObject: header)
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + payload
    }

    @Test("decode skips int64 num_batches_tracked, counts its 8 bytes, and refuses other dtypes asking for float32")
    func dtypes() throws {
        let weight = ("bn1.weight", "F32", [2], [UInt8](repeating: 0, count: 8))
        let counter = ("bn1.num_batches_tracked", "I64", [Int](), [UInt8](repeating: 0, count: 8))
        let decoded = try Safetensors.decode(try file([counter, weight]), source: "sd", requireChecksum: false).entries
        #expect(Array(decoded.keys) == ["bn1.weight"])
        // an I64 counter of 4 bytes does not tile
        #expect(throws: TrainingError.self) {
            try Safetensors.decode(try file([("bn1.num_batches_tracked", "I64", [], [0, 0, 0, 0]), weight]), source: "sd", requireChecksum: false)
        }
        for other in [("bn1.running_var", "F64", [1], [UInt8](repeating: 0, count: 8)), ("labels", "I64", [1], [UInt8](repeating: 0, count: 8)),
                      ("bn1.running_var", "F16", [2], [UInt8](repeating: 0, count: 4))] {
            do {
                _ = try Safetensors.decode(try file([weight, other]), source: "sd", requireChecksum: false)
                Issue.record("\(other.0) of \(other.1) was accepted")
            } catch let error as TrainingError {
                #expect(error.message.contains(other.0) && error.message.contains(other.1) && error.message.contains("float32"), "\(error.message)")
            }
        }
    }
}

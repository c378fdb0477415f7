import ABNLayers
import ABNTensor
import ABNTestSupport
import ABNTraining
import Foundation
import Testing

/// The torchvision fixtures (Tests/Fixtures/torchvision, written by python/make_network_fixtures.py).
let torchvisionFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/torchvision")

@Suite("torchvision's networks")
struct TorchvisionNetworkTests {
    static func norm(_ mode: NormMode) -> NormSettings { NormSettings(mode: mode, activation: .elu(alpha: 1), eps: 1e-5, momentum: 0.1) }

    /// The networks of names.json, built at torchvision's widths.
    static func network(_ arch: String, mode: NormMode = .inplace) throws -> any Network {
        let norm = norm(mode)
        if let depth = ResNetDepth(rawValue: arch) { return try ResNetShape(depth: depth, inChannels: 3, classes: 10).classifier(norm: norm) }
        let backbone = ResNetDepth(rawValue: String(arch.dropFirst("deeplabv3_".count)))!
        return try DeepLabV3Shape(backbone: backbone, classes: 21).network(norm: norm)
    }

    @Test("parameter names, shapes and order are torchvision's", arguments: ["resnet18", "resnet34", "resnet50", "resnet101",
                                                                             "deeplabv3_resnet50", "deeplabv3_resnet101"])
    func names(arch: String) throws {
        let all = try JSONDecoder().decode([String: [[Name]]].self, from: Data(contentsOf: torchvisionFixtures.appendingPathComponent("names.json")))
        let want = try #require(all[arch]).map { (name: $0[0].text!, shape: $0[1].shape!) }
        let net = try Self.network(arch)
        let got = (net.parameters.parameters + net.parameters.buffers).map { (name: $0.name, shape: $0.shape) }
        let isBuffer = { (name: String) in name.hasSuffix("running_mean") || name.hasSuffix("running_var") }
        #expect(got.map(\.name) == want.filter { !isBuffer($0.name) }.map(\.name) + want.filter { isBuffer($0.name) }.map(\.name))
        let shapes = Dictionary(uniqueKeysWithValues: want.map { ($0.name, $0.shape) })
        for p in got { #expect(shapes[p.name] == p.shape, "\(p.name)") }
    }

    /// A name or a shape in names.json.
    enum Name: Decodable {
        case text(String)
        case shape([Int])
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .text(s) } else { self = .shape(try c.decode([Int].self)) }
        }
        var text: String? { if case .text(let s) = self { s } else { nil } }
        var shape: [Int]? { if case .shape(let s) = self { s } else { nil } }
    }

    /// The fixtures' networks (narrow, ELU(1) everywhere, dropout 0).
    static func fixtureNetwork(_ file: String, mode: NormMode) throws -> any Network {
        switch file {
        case "resnet18_w4": try ResNetShape(depth: .resnet18, baseWidth: 4, inChannels: 3, classes: 5).classifier(norm: norm(mode))
        case "resnet50_w2": try ResNetShape(depth: .resnet50, baseWidth: 2, inChannels: 3, classes: 5).classifier(norm: norm(mode))
        default: try DeepLabV3Shape(backbone: .resnet50, baseWidth: 2, inChannels: 3, outputStride: 8, headWidth: 4, dropout: 0, classes: 5)
            .network(norm: norm(mode))
        }
    }

    @Test("a training step matches PyTorch's float64 step within 10 x PyTorch's own float32 error",
          arguments: ["resnet18_w4", "resnet50_w2", "deeplabv3_resnet50_w2"], NormMode.allCases)
    func trainingStep(file: String, mode: NormMode) throws {
        let url = torchvisionFixtures.appendingPathComponent("\(file).safetensors")
        let tensors = try Safetensors.decode(Data(contentsOf: url), source: url.path, requireChecksum: false).entries
        func tensor(_ name: String) throws -> Safetensors.Entry { try #require(tensors[name], "\(file) has no \(name)") }
        let net = try Self.fixtureNetwork(file, mode: mode)
        for p in net.parameters.parameters + net.parameters.buffers {
            let entry = try tensor(p.name)
            try #require(entry.shape == p.shape, "\(p.name): fixture shape \(entry.shape), network \(p.shape)")
            p.value.copy(from: Tensor(entry.values, shape: entry.shape))
        }
        let input = try tensor("input"), probe = try tensor("probe")
        let logits = try net.forward(Tensor(input.values, shape: input.shape))
        net.backward(Tensor(probe.values, shape: probe.shape))

        /// |got - want| <= 10 x PyTorch's float32 error + 4 float spacings of the largest |want|.
        func check(_ key: String, _ got: [Float]) throws {
            let want = try tensor("want.\(key)").values, floor = Double(try tensor("floor.\(key)").values[0])
            try #require(got.count == want.count, "\(key): \(got.count) values, want \(want.count)")
            let largest = want.map { abs(Double($0)) }.max() ?? 0
            let distance = zip(got, want).map { abs(Double($0) - Double($1)) }.max() ?? 0
            let tolerance = 10 * floor + 4 * Double(Float(largest).ulp)
            #expect(distance <= tolerance, "\(file) [\(mode)] \(key): off by \(distance), tolerance \(tolerance) (PyTorch float32 \(floor))")
        }
        try check("logits", logits.array)
        for p in net.parameters.parameters { try check("grad.\(p.name)", p.gradient!.array) }
        for b in net.parameters.buffers { try check("after.\(b.name)", b.value.array) }
    }
}

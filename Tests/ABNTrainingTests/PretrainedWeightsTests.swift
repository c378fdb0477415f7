import ABNLayers
import ABNTraining
import Foundation
import Testing

/// The converted gray ResNet-18 fixture (base width 4, one input channel, 10 classes) as an abn
/// checkpoint in the temporary folder, without the tensor `removing`; its path.
func convertedCheckpoint(removing: String? = nil) throws -> String {
    var entries = try TorchvisionConversion.convert(torchvisionFixture("conversion_resnet18_w4_gray.safetensors").entries, eps: 1e-5).entries
    if let removing { entries[removing] = nil }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("abn-pretrained-\(UUID().uuidString).safetensors").path
    try Checkpoint.encode(weights: entries.values.sorted { $0.name < $1.name }, metadata: ["converted_from": "conversion_resnet18_w4_gray.safetensors"])
        .write(to: URL(fileURLWithPath: path))
    return path
}

@Suite("model.pretrained")
struct PretrainedWeightsTests {
    /// The fixture's ResNet-18 with `classes` classes and other initial weights.
    func network(classes: Int) throws -> any Network {
        try ResNetShape(depth: .resnet18, baseWidth: 4, inChannels: 1, classes: classes).classifier(norm: NormSettings(mode: .inplace), seed: 3)
    }

    /// Every value of the network's parameters and buffers.
    func values(_ net: any Network) -> [Float] { net.parameters.values.array + net.parameters.bufferValues.array }

    @Test("a classifier of another class count takes every tensor but its output layer's and names those")
    func otherClassCount() throws {
        let path = try convertedCheckpoint()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try Checkpoint(path: path), net = try network(classes: 7)
        let fc = net.parameters.parameters.filter { $0.name.hasPrefix("fc.") }, initial = fc.map(\.value.array)
        let pretrained = try PretrainedWeights(file, into: net)
        #expect(pretrained.leftOut.map(\.name) == ["fc.weight", "fc.bias"])
        #expect(pretrained.loaded == net.parameters.parameters.count + net.parameters.buffers.count - 2 && pretrained.unused == 0)
        #expect(pretrained.summary.contains("fc.weight (the file's shape is [10, 32], the network's [7, 32])"), "\(pretrained.summary)")
        for p in net.parameters.parameters + net.parameters.buffers where !p.name.hasPrefix("fc.") {
            #expect(p.value.array == file.entries[p.name]?.values, "\(p.name) was not copied")
        }
        #expect(fc.map(\.value.array) == initial, "the output layer changed")
    }

    @Test("a file without a tensor outside the output layer is refused, naming it, and changes nothing")
    func missingBackboneTensor() throws {
        let path = try convertedCheckpoint(removing: "layer2.0.conv1.weight")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let net = try network(classes: 10), before = values(net)
        do {
            _ = try PretrainedWeights(try Checkpoint(path: path), into: net)
            Issue.record("a file without layer2.0.conv1.weight was accepted")
        } catch let error as TrainingError {
            #expect(error.message.contains("layer2.0.conv1.weight: not in the file") && error.message.contains("output layer fc"), "\(error.message)")
        }
        #expect(values(net) == before)
    }

    @Test("a file of which no tensor fits is refused")
    func nothingMatches() throws {
        let path = try convertedCheckpoint()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let deeplab = try DeepLabV3Shape(backbone: .resnet18, baseWidth: 4, inChannels: 1, outputStride: 16, headWidth: 4, classes: 10)
            .network(norm: NormSettings(mode: .inplace))
        #expect(throws: TrainingError.self) { try PretrainedWeights(try Checkpoint(path: path), into: deeplab) }
        // a torchvision file that was not converted is refused with the way to convert it
        let raw = torchvisionFixtures.appendingPathComponent("conversion_resnet18_w4_gray.safetensors").path
        do {
            _ = try PretrainedWeights.read(raw)
            Issue.record("an unconverted state dict was read")
        } catch let error as TrainingError {
            #expect(error.message.contains("abn convert torchvision \(raw)"), "\(error.message)")
        }
    }
}

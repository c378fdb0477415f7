import ABNData
import ABNLayers
import ABNTensor
import ABNTraining
import Foundation
import Testing

/// What `abn predict` needs besides inference: the network's sizes from a checkpoint alone, masks
/// of images of any size and channels, and the files it reads and writes.
@Suite("Prediction: network sizes from a checkpoint, masks, input and output files")
struct PredictorTests {
    /// A tiny DeepLabV3 config (ResNet-18 at base width 4).
    func config() throws -> TrainingConfig {
        try TrainingConfig.parse(yaml: "", overrides: ["model.arch=deeplabv3", "model.backbone=resnet18", "model.base_width=4", "model.head_width=8",
                                                       "data.mean=0.4", "data.std=0.2", "model.init_seed=3"])
    }

    /// A fresh folder under the system's temporary folder.
    func folder(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("abn-predictor-\(getpid())-\(name)").path
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The weights of `net` as a checkpoint file at `path`, with `config` stored as a run's are.
    func save(_ net: any Network, config: TrainingConfig, to path: String) throws {
        let entries = (net.parameters.parameters + net.parameters.buffers).map { Safetensors.Entry(name: $0.name, shape: $0.shape, values: $0.value.array) }
        try Checkpoint.encode(weights: entries, metadata: ["config": try config.yaml(), "model": net.summary]).write(to: URL(fileURLWithPath: path))
    }

    @Test("the input channels and classes come from the checkpoint's first and last tensors; a foreign checkpoint is refused")
    func sizesFromCheckpoint() throws {
        let c = try config(), dir = folder("sizes")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/gray-7.safetensors"
        try save(try c.makeNetwork(ModelInput(channels: 1, classes: 7, task: .segmentation)), config: c, to: path)
        #expect(try ModelInput(checkpoint: Checkpoint(path: path), config: c) == ModelInput(channels: 1, classes: 7, task: .segmentation))
        var other = c
        other.model.arch = .deeplab
        other.model.widths = [4, 8, 8, 8]
        #expect(throws: TrainingError.self) { try ModelInput(checkpoint: Checkpoint(path: path), config: other) }
    }

    @Test("a mask has the image's size, its classes are the network's, and an RGB image is taken as gray by a gray network")
    func masks() throws {
        let c = try config(), dir = folder("masks")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/gray-7.safetensors"
        try save(try c.makeNetwork(ModelInput(channels: 1, classes: 7, task: .segmentation)), config: c, to: path)
        let checkpoint = try Checkpoint(path: path)
        let predictor = try Predictor(config: c, input: ModelInput(checkpoint: checkpoint, config: c), ranks: 1)
        try checkpoint.load(into: predictor.net)
        var rng = SplitMix64(seed: 9)
        let rgb = Image8(width: 45, height: 30, channels: 3, pixels: (0..<45 * 30 * 3).map { _ in UInt8(rng.next() % 256) })
        let mask = try predictor.mask(rgb)
        #expect(mask.width == 45 && mask.height == 30 && mask.channels == 1 && mask.pixels.allSatisfy { $0 < 7 })
        #expect(try predictor.mask(rgb.converted(toChannels: 1)) == mask)
        // the input is (pixel / 255 - mean) / std, computed as pixel x 1 / (255 std) - mean / std in
        // Float: five roundings of at most u = 2^-24 relative each, on terms no larger than the two
        let gray = rgb.converted(toChannels: 1)
        let input = predictor.pipeline.input(gray)
        #expect(input.shape == [1, 1, 30, 45])
        for (i, pixel) in gray.pixels.enumerated() {
            let want = (Double(pixel) / 255 - Double(Float(0.4))) / Double(Float(0.2))
            let bound = 5 * 0x1p-24 * (Double(pixel) / 255 + Double(Float(0.4))) / Double(Float(0.2))
            #expect(abs(Double(input[flat: i]) - want) <= bound, "pixel \(i): \(input[flat: i]), want \(want)")
        }
        let logits = try predictor.inference.logits(predictor.net, image: input)
        let plane = 30 * 45
        #expect(mask.pixels == (0..<plane).map { p in UInt8(argmax(logits.data + p, count: 7, stride: plane)) })
    }

    @Test("inputs: folders read recursively and sorted, names keep the sub-folders, the output folder is left out")
    func inputs() throws {
        let dir = folder("inputs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["b.jpg", "a.png", "sub/c.JPEG", "sub/.hidden.png", "notes.txt", "out/a.png", ".cache/d.png"] {
            let path = dir + "/" + name
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data([0]).write(to: URL(fileURLWithPath: path))
        }
        let listed = try PredictionInputs([dir], output: dir + "/out", overlays: true).files
        #expect(listed.map(\.image) == [dir + "/a.png", dir + "/b.jpg", dir + "/sub/c.JPEG"])
        #expect(listed.map(\.mask) == ["a.png", "b.png", "sub/c.png"])
        #expect(listed.map(\.overlay) == ["a_overlay.png", "b_overlay.png", "sub/c_overlay.png"])
        let single = try PredictionInputs([dir + "/sub/c.JPEG", dir + "/b.jpg"], output: "elsewhere", overlays: false).files
        #expect(single.map(\.mask) == ["c.png", "b.png"] && single.allSatisfy { $0.overlay == nil })
    }

    @Test("inputs that would write one file, are missing, hold no image or are not images are refused, naming them")
    func refusedInputs() throws {
        let dir = folder("refused")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["x/a.png", "y/a.jpg", "y/a_overlay.png", "empty/notes.txt"] {
            let path = dir + "/" + name
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data([0]).write(to: URL(fileURLWithPath: path))
        }
        func message(_ arguments: [String], overlays: Bool = false) -> String {
            do {
                _ = try PredictionInputs(arguments.map { dir + "/" + $0 }, output: dir + "/out", overlays: overlays)
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(message(["x", "y/a.jpg"]).contains("x/a.png and \(dir)/y/a.jpg would both write a.png"))
        #expect(message(["y"], overlays: true).contains("would both write a_overlay.png"))
        #expect(message(["y"]) == "accepted")
        #expect(message(["missing.png"]).contains("does not exist"))
        #expect(message(["empty"]).contains("holds no PNG or JPEG file"))
        #expect(message(["empty/notes.txt"]).contains("is not a PNG or JPEG file"))
    }
}

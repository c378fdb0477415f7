import ABNLayers
import ABNTraining
import Foundation
import Testing

@Suite("Training config")
struct ConfigTests {
    func error(_ yaml: String, overrides: [String] = []) -> String {
        do {
            _ = try TrainingConfig.parse(yaml: yaml, overrides: overrides)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test("the bundled configs load")
    func bundled() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for name in ["fmnist-resnet", "fmnist-resnet-standard", "fmnist-resnet-checkpoint", "tiny"] {
            let config = try TrainingConfig.load(path: root.appendingPathComponent("configs/\(name).yaml").path)
            #expect(config.train.globalBatch >= 1)
        }
        let standard = try TrainingConfig.load(path: root.appendingPathComponent("configs/fmnist-resnet-standard.yaml").path)
        #expect(standard.model.norm == .standard)
    }

    @Test("missing keys take defaults; --set overrides; the resolved YAML reads back the same")
    func defaultsAndOverrides() throws {
        let config = try TrainingConfig.parse(yaml: "train:\n  lr: 0.05\n", overrides: ["model.widths=[4, 8, 8]", "train.global_batch=31", "model.eps=1e-3"])
        #expect(config.train.lr == 0.05 && config.train.globalBatch == 31 && config.model.widths == [4, 8, 8])
        #expect(config.model.eps == 1e-3)
        #expect(config.data.root == TrainingConfig().data.root)
        #expect(try TrainingConfig.parse(yaml: try config.yaml()) == config)
    }

    @Test("an unknown key, a wrong type or an out-of-range value is an error naming the key")
    func errorsNameTheKey() {
        #expect(error("train:\n  learning_rate: 0.1\n").contains("train.learning_rate"))
        #expect(error("trian:\n  lr: 0.1\n").contains("trian"))
        #expect(error("train:\n  global_batch: many\n").contains("train.global_batch"))
        #expect(error("model:\n  widths: 32\n").contains("model.widths"))
        #expect(error("train:\n  lr: -1\n").contains("train.lr"))
        #expect(error("model:\n  norm: fused\n").contains("model.norm"))
        #expect(error("model:\n  activation: relu\n").contains("leaky_relu"))
        #expect(error("", overrides: ["train.lr"]).contains("KEY=VALUE"))
        #expect(error("", overrides: ["checkpoint.keep=0"]).contains("checkpoint.keep"))
        #expect(error("train: [1, 2]\n").contains("train"))
    }
}

@Suite("Data")
struct DataTests {
    static let root = "/usr/share/datasets/fashion-mnist"

    @Test("Fashion-MNIST reads with its sizes and labels", .enabled(if: FileManager.default.fileExists(atPath: root)))
    func reads() throws {
        let train = try FashionMNIST(root: Self.root, split: .train)
        let test = try FashionMNIST(root: Self.root, split: .test, limit: 100)
        #expect(train.count == 60_000 && train.height == 28 && train.width == 28)
        #expect(test.count == 100)
        #expect(Set(train.labels) == Set(0...9))
        let mean = train.pixels.reduce(0.0) { $0 + Double($1) } / Double(train.pixels.count) / 255
        #expect(abs(mean - 0.2860) < 1e-3)
    }

    @Test("a missing, truncated or mislabelled file is refused with a message")
    func badFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("abn-idx-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: TrainingError.self) { try FashionMNIST(root: dir.path, split: .train) }
        // images: header says 2 images of 2x2 but only 5 bytes of data follow
        try gzipFile(dir.appendingPathComponent("t10k-images-idx3-ubyte.gz"), [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5])
        try gzipFile(dir.appendingPathComponent("t10k-labels-idx1-ubyte.gz"), [0, 0, 8, 1, 0, 0, 0, 2, 3, 4])
        do {
            _ = try FashionMNIST(root: dir.path, split: .test)
            Issue.record("a truncated file was accepted")
        } catch let e as TrainingError {
            #expect(e.message.contains("truncated"))
        }
        // labels file given the images' magic number
        try gzipFile(dir.appendingPathComponent("t10k-images-idx3-ubyte.gz"), [0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7])
        try gzipFile(dir.appendingPathComponent("t10k-labels-idx1-ubyte.gz"), [0, 0, 8, 3, 0, 0, 0, 1, 3])
        do {
            _ = try FashionMNIST(root: dir.path, split: .test)
            Issue.record("a file with the wrong magic number was accepted")
        } catch let e as TrainingError {
            #expect(e.message.contains("magic"))
        }
    }

    @Test("global batches do not depend on the world size, and slices cover them")
    func batches() throws {
        let batches = try GlobalBatches(samples: 100, globalBatch: 31, seed: 3)
        #expect(batches.stepsPerEpoch == 3)
        let permutation = batches.permutation(epoch: 1)
        #expect(permutation.sorted() == Array(0..<100))
        #expect(permutation != batches.permutation(epoch: 2))
        let global = batches.batch(step: 4, permutation: permutation)
        for ranks in 1...4 {
            let slices = BatchSlices(even: 31, ranks: ranks)
            #expect(slices.total == 31)
            let joined = (0..<ranks).flatMap { global[slices.range(rank: $0)] }
            #expect(joined == global)
        }
        #expect(BatchSlices(even: 31, ranks: 3).counts == [11, 10, 10])
        #expect(throws: TrainingError.self) { try GlobalBatches(samples: 10, globalBatch: 11, seed: 0) }
    }

    @Test("augmentation is a function of seed, epoch and sample")
    func augmentation() throws {
        guard FileManager.default.fileExists(atPath: Self.root) else { return }
        let data = try FashionMNIST(root: Self.root, split: .test, limit: 50)
        let pipeline = ImagePipeline(mean: 0.286, std: 0.353, augment: true, cropPadding: 2, flip: true, seed: 1)
        let a = pipeline.batch(data, indices: [3, 7, 9], epoch: 0).images.array
        let b = pipeline.batch(data, indices: [9, 7], epoch: 0).images.array  // another batch and position
        #expect(Array(a[784..<1568]) == Array(b[784..<1568]))  // sample 7
        #expect(Array(a[1568..<2352]) == Array(b[0..<784]))  // sample 9
        let c = pipeline.batch(data, indices: [3, 7, 9], epoch: 1).images.array
        #expect(a != c)
    }
}

/// Writes `bytes` gzip-compressed (via gzip(1)).
func gzipFile(_ url: URL, _ bytes: [UInt8]) throws {
    let raw = url.deletingPathExtension()
    try Data(bytes).write(to: raw)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/gzip")
    p.arguments = ["-f", raw.path]
    try p.run()
    p.waitUntilExit()
}

import ABNLayers
import ABNTensor
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
        let names = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("configs").path).filter { $0.hasSuffix(".yaml") }
        #expect(names.count >= 6, "configs/ holds \(names)")
        for name in names {
            let config = try TrainingConfig.load(path: root.appendingPathComponent("configs/\(name)").path)
            #expect(config.train.globalBatch >= 1, "\(name)")
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
        #expect(error("train:\n  gemm: mkl\n").contains("train.gemm"))
        #expect(error("train:\n  evaluate_every: 0\n").contains("train.evaluate_every"))
        #expect(error("model:\n  output_stride: 2\n").contains("model.output_stride"))
        #expect(error("model:\n  norm: fused\n").contains("model.norm"))
        #expect(error("model:\n  activation: relu\n").contains("leaky_relu"))
        #expect(error("", overrides: ["train.lr"]).contains("KEY=VALUE"))
        #expect(error("", overrides: ["checkpoint.keep=0"]).contains("checkpoint.keep"))
        #expect(error("train: [1, 2]\n").contains("train"))
    }

    @Test("a name outside its set is refused with the names the key takes; every name of each set is accepted")
    func choices() throws {
        #expect(error("model:\n  arch: vgg\n") == "model.arch: must be resnet, deeplab, resnet18, resnet34, resnet50, resnet101 or deeplabv3, got 'vgg'.")
        #expect(error("data:\n  format: coco\n") == "data.format: must be fashion-mnist, image-folder, segmentation-folder, cityscapes, voc, ade20k, vistas or coco-stuff, got 'coco'.")
        #expect(error("train:\n  schedule: step\n") == "train.schedule: must be cosine, poly or constant, got 'step'.")
        #expect(error("model:\n  norm: fused\n") == "model.norm: must be inplace, standard or checkpoint, got 'fused'.")
        #expect(error("", overrides: ["eval.mode=tiles"]) == "eval.mode: must be whole or slide, got 'tiles'.")
        #expect(error("", overrides: ["data.generate.kind=cifar"]) == "data.generate.kind: must be none or fmnist-scenes, got 'cifar'.")
        #expect(error("", overrides: ["model.backbone=resnet152"]).hasPrefix("model.backbone: must be resnet18, resnet34, resnet50 or resnet101"))
        #expect(error("", overrides: ["train.gemm=mkl"]) == "train.gemm: must be openblas, onednn or auto, got 'mkl'.")
        #expect(error("", overrides: ["model.arch=5"]).hasSuffix("got the number 5."))
        #expect(error("eval:\n  mode: true\n") == "eval.mode: must be whole or slide, got true.")
        let read: [(key: String, names: [String], value: (TrainingConfig) -> String)] = [
            ("train.schedule", ["cosine", "poly", "constant"], { $0.train.schedule.rawValue }),
            ("eval.mode", ["whole", "slide"], { $0.eval.mode.rawValue }),
            ("train.gemm", ["openblas", "onednn", "auto"], { $0.train.gemm.rawValue }),
            ("data.generate.kind", ["none", "fmnist-scenes"], { $0.data.generate.kind.rawValue }),
            ("model.backbone", ["resnet18", "resnet34", "resnet50", "resnet101"], { $0.model.backbone.rawValue }),
        ]
        for choice in read {
            for name in choice.names {
                let config = try TrainingConfig.parse(yaml: "", overrides: ["\(choice.key)=\(name)"])
                #expect(choice.value(config) == name, "\(choice.key)=\(name)")
                #expect(try TrainingConfig.parse(yaml: try config.yaml()) == config, "\(choice.key)=\(name) written and read back")
            }
        }
    }

    @Test("untrusted numbers get a message naming the key, never a trap")
    func hostileNumbers() {
        #expect(error("train:\n  lr: .nan\n").contains("train.lr"))
        #expect(error("train:\n  lr: .inf\n").contains("finite"))
        #expect(error("", overrides: ["model.eps=nan"]).contains("model.eps"))
        #expect(error("train:\n  global_batch: 3.5\n").contains("train.global_batch"))
        #expect(error("train:\n  epochs: 9223372036854775807\n").contains("train.epochs"))
        #expect(error("train:\n  bucket_kib: 9007199254740992\n").contains("train.bucket_kib"))
        #expect(error("train:\n  collective_timeout_s: -1\n").contains("train.collective_timeout_s"))
        #expect(error("model:\n  widths: [16384, 16384, 16384, 16384]\n  blocks_per_stage: 64\n").contains("GB"))
        #expect(error("train:\n  collective_timeout_s: 5\n") == "no error")  // the control
    }

    @Test("parameter counts come from the declared network: torchvision's own counts, and no memory spent")
    func parameterCounts() throws {
        // torchvision 0.29's sum of numel() over parameters(), 1000 classes (21 and 19 for DeepLabV3, aux_loss=False)
        let published: [(arch: String, backbone: String, classes: Int, count: Int)] = [
            ("resnet18", "", 1000, 11_689_512), ("resnet34", "", 1000, 21_797_672), ("resnet50", "", 1000, 25_557_032),
            ("resnet101", "", 1000, 44_549_160), ("deeplabv3", "resnet50", 21, 39_638_869), ("deeplabv3", "resnet101", 19, 58_630_483),
        ]
        for net in published {
            let config = try TrainingConfig.parse(yaml: "model:\n  arch: \(net.arch)\n" + (net.backbone.isEmpty ? "" : "  backbone: \(net.backbone)\n"))
            let input = ModelInput(channels: 3, classes: net.classes, task: config.model.arch.task)
            let ledger = MemoryLedger()
            let count = try MemoryLedger.$current.withValue(ledger) { try config.parameterCount(input) }
            #expect(count == net.count, "\(net.arch) \(net.backbone)")
            #expect(ledger.peakBytes < 1 << 20, "\(net.arch) \(net.backbone): \(ledger.peakBytes) bytes")
        }
        let built = try TrainingConfig.parse(yaml: "model:\n  arch: resnet18\n").makeNetwork(ModelInput(channels: 3, classes: 1000, task: .classification))
        #expect(built.parameters.parameterCount == 11_689_512)
    }

    @Test("a config file that is empty or not text is refused with a sentence")
    func notAConfig() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("abn-config-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty.yaml"), binary = dir.appendingPathComponent("binary.yaml")
        try Data("\n  \n".utf8).write(to: empty)
        try Data([0x1F, 0x8B, 0x08, 0x00, 0xFF, 0xFE, 0x00, 0x01]).write(to: binary)
        for (url, words) in [(empty, "is empty"), (binary, "not a text file")] {
            do {
                _ = try TrainingConfig.load(path: url.path)
                Issue.record("\(url.lastPathComponent) was accepted")
            } catch {
                #expect("\(error)".contains(words), "\(error)")
            }
        }
    }

    @Test("resume compares configs: settings that change the run are named, the others pass")
    func runChanges() throws {
        let stored = try TrainingConfig.parse(yaml: "train:\n  lr: 0.1\n")
        let logging = try TrainingConfig.parse(yaml: "train:\n  lr: 0.1\n  log_every: 3\n  evaluate_every: 5\n  collective_timeout_s: 9\n  gemm: onednn\ncheckpoint:\n  keep: 9\n")
        #expect(try logging.runChanges(from: stored).isEmpty)
        let changed = try TrainingConfig.parse(yaml: "train:\n  lr: 0.2\n  max_steps: 50\nmodel:\n  widths: [8, 8]\n")
        let changes = try changed.runChanges(from: stored)
        #expect(changes.count == 3, "\(changes)")
        #expect(changes.contains { $0.hasPrefix("train.lr: 0.1 -> 0.2") } && changes.contains { $0.hasPrefix("train.max_steps") }
                && changes.contains { $0.hasPrefix("model.widths") }, "\(changes)")
    }

    @Test("stage depths: a list, or one number for every stage, not both")
    func stageDepths() throws {
        let listed = try TrainingConfig.parse(yaml: "model:\n  widths: [8, 8, 16, 16]\n  blocks: [3, 4, 6, 3]\n")
        #expect(listed.model.stageBlocks == [3, 4, 6, 3])
        #expect(try TrainingConfig.parse(yaml: try listed.yaml()) == listed)
        let uniform = try TrainingConfig.parse(yaml: "model:\n  blocks_per_stage: 3\n")
        #expect(uniform.model.stageBlocks == [3, 3, 3])
        #expect(try TrainingConfig.parse(yaml: try uniform.yaml()) == uniform)
        let both = error("model:\n  blocks: [1, 1, 1]\n  blocks_per_stage: 2\n")
        #expect(both.contains("model.blocks ") && both.contains("model.blocks_per_stage"), "\(both)")
        #expect(error("model:\n  blocks: [1, 1]\n").contains("model.blocks:"))
        #expect(error("model:\n  blocks: [1, 0, 1]\n").contains("model.blocks:"))
        for one in ["3", "[3]"] {  // one number for every stage
            let single = try TrainingConfig.parse(yaml: "model:\n  blocks: \(one)\n")
            #expect(single.model.stageBlocks == [3, 3, 3] && single == uniform, "\(one)")
        }
        #expect(error("model:\n  blocks: 2\n  blocks_per_stage: 3\n").contains("both given"))
        #expect(error("model:\n  blocks: 65\n").contains("model.blocks_per_stage"))
    }

    @Test("a --set of one spelling of the stage depths replaces the other, wherever that was given")
    func stageDepthsOverridden() throws {
        let listedFile = "model:\n  blocks: [1, 2, 1]\n", uniformFile = "model:\n  blocks_per_stage: 2\n"
        #expect(try TrainingConfig.parse(yaml: listedFile, overrides: ["model.blocks_per_stage=3"]).model.stageBlocks == [3, 3, 3])
        #expect(try TrainingConfig.parse(yaml: uniformFile, overrides: ["model.blocks=[1,2,3]"]).model.stageBlocks == [1, 2, 3])
        #expect(try TrainingConfig.parse(yaml: uniformFile, overrides: ["model.blocks=4"]).model.stageBlocks == [4, 4, 4])
        #expect(try TrainingConfig.parse(yaml: "", overrides: ["model.blocks=[1,2,3]", "model.blocks_per_stage=2"]).model.stageBlocks == [2, 2, 2])
        #expect(try TrainingConfig.parse(yaml: "model:\n  blocks_per_stage: 3\n", overrides: ["model.blocks=[]"]).model.stageBlocks == [3, 3, 3])
        #expect(try TrainingConfig.parse(yaml: "model:\n  blocks: 2.0\n").model.stageBlocks == [2, 2, 2])
        // the bundled configs spell one depth as model.blocks, and take either override
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let tiny = root.appendingPathComponent("configs/tiny.yaml").path
        #expect(try TrainingConfig.load(path: tiny, overrides: ["model.blocks=[1,2,1]"]).model.stageBlocks == [1, 2, 1])
        #expect(try TrainingConfig.load(path: tiny, overrides: ["model.blocks_per_stage=2"]).model.stageBlocks == [2, 2, 2])
    }

    @Test("resume compares stage depths, not their spelling")
    func stageDepthsSpelling() throws {
        let stored = try TrainingConfig.parse(yaml: "model:\n  blocks_per_stage: 2\n")
        #expect(try TrainingConfig.parse(yaml: "model:\n  blocks: [2, 2, 2]\n").runChanges(from: stored).isEmpty)
        let deeper = try TrainingConfig.parse(yaml: "model:\n  blocks: [2, 3, 2]\n").runChanges(from: stored)
        #expect(deeper == ["model.blocks: [2,2,2] -> [2,3,2]"], "\(deeper)")
    }
}

@Suite("Global batches")
struct GlobalBatchTests {
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
}

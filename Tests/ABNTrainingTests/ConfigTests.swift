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

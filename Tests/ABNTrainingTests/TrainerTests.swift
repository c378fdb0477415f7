import ABNComm
import ABNTestSupport
import ABNTraining
import Foundation
import Testing

/// The training loop in process, on configs/tiny.yaml: one process, and ranks as threads of
/// the test process (`ThreadCommunicator`), beside the integration tests of the binary.
@Suite("Training loop in process", .serialized)
struct TrainerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// configs/tiny.yaml with `settings`; cancelled (skipped) when its Fashion-MNIST files are missing.
    func config(_ settings: [String]) throws -> TrainingConfig {
        let config = try TrainingConfig.load(path: Self.root.appendingPathComponent("configs/tiny.yaml").path,
                                             overrides: ["train.log_every=1", "train.evaluate=false"] + settings)
        if !FileManager.default.fileExists(atPath: config.data.root) {
            try Test.cancel("skipped: the Fashion-MNIST files are missing at \(config.data.root) (apt-get install dataset-fashion-mnist)")
        }
        return config
    }

    /// A fresh directory under the system's temporary folder.
    func directory(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("abn-trainer-\(getpid())-\(name)").path
        try? FileManager.default.removeItem(atPath: path)
        return path
    }

    /// Trains `config` on `ranks` ranks in threads into `directory`; rank 0's outcome.
    func train(_ config: TrainingConfig, ranks: Int = 1, directory: String, stopAfterStep: Int? = nil,
               resume: Bool = false) throws -> Trainer.Outcome {
        let comms: [Communicator] = ranks == 1 ? [SingleProcess()] : ThreadCommunicator.group(size: ranks)
        nonisolated(unsafe) var outcomes = [Result<Trainer.Outcome, Error>?](repeating: nil, count: ranks)
        let done = DispatchGroup()
        for rank in 0..<ranks {
            nonisolated(unsafe) let comm = comms[rank]
            done.enter()
            Thread {
                let trainer = Trainer(config: config, runDirectory: directory, coordinator: Coordinator(comm: comm), progress: .lines)
                outcomes[rank] = Result { try trainer.run(resume: resume, stopAfterStep: stopAfterStep) }
                done.leave()
            }.start()
        }
        done.wait()
        for outcome in outcomes.dropFirst() { _ = try outcome!.get() }
        return try outcomes[0]!.get()
    }

    /// The losses of DIR/metrics.jsonl, in order.
    func losses(_ directory: String) throws -> [Double] {
        try String(contentsOfFile: directory + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double
        }
    }

    @Test("K steps, a stop, K more steps on resume give the checkpoint of 2K steps in one run, bit for bit")
    func exactResume() throws {
        try withProcessSettings {
            let c = try config(["train.max_steps=8", "checkpoint.every=0"])
            let straight = directory("straight"), resumed = directory("resumed")
            #expect(try train(c, directory: straight) == .finished)
            #expect(try train(c, directory: resumed, stopAfterStep: 4) == .finished)
            #expect(try train(c, directory: resumed, resume: true) == .finished)
            let file = "/checkpoints/step-00000008.safetensors"
            let a = try #require(FileManager.default.contents(atPath: straight + file))
            let b = try #require(FileManager.default.contents(atPath: resumed + file))
            #expect(a == b, "the resumed run's checkpoint differs from the uninterrupted run's")
            #expect(try losses(resumed) == losses(straight), "the metrics of a resumed run differ")
            for dir in [straight, resumed] { try? FileManager.default.removeItem(atPath: dir) }
        }
    }

    @Test("3 ranks in threads log the losses of one process within the measured noise floor; unsynchronized ranks do not")
    func ranksInThreads() throws {
        try withProcessSettings {
            let c = try config(["train.max_steps=8", "train.global_batch=31", "checkpoint.every=0"])
            let one = directory("one"), floor = directory("floor"), three = directory("three"), control = directory("control")
            _ = try train(c, directory: one)
            var other = c
            other.train.gemm = .onednn  // another valid order: every product on the other library
            _ = try train(other, directory: floor)
            _ = try train(c, ranks: 3, directory: three)
            var unsynchronized = c
            unsynchronized.model.sync = false
            _ = try train(unsynchronized, ranks: 3, directory: control)
            let yardstick = LossYardstick(reference: try losses(one), floor: try losses(floor))
            #expect(yardstick.reference.count == 8)
            yardstick.expectMatch(try losses(three), control: try losses(control))
            for dir in [one, floor, three, control] { try? FileManager.default.removeItem(atPath: dir) }
        }
    }

    @Test("a run from step 0 starts from model.pretrained")
    func pretrained() throws {
        let path = try convertedCheckpoint()
        let dir = directory("pretrained")
        defer { for file in [path, dir] { try? FileManager.default.removeItem(atPath: file) } }
        // a learning rate far below the weights' float spacing leaves them where they started
        let c = try config(["model.arch=resnet18", "model.base_width=4", "model.pretrained=\(path)", "train.lr=1e-30",
                            "train.max_steps=1", "checkpoint.every=0"])
        #expect(try train(c, directory: dir) == .finished)
        let file = try Checkpoint(path: path), after = try Checkpoint(path: dir + "/checkpoints/step-00000001.safetensors")
        let weights = file.entries.keys.filter { !$0.contains("running_") }
        #expect(weights.count == 62)
        for name in weights { #expect(after.entries[name]?.values == file.entries[name]?.values, "\(name) did not start from the file") }
    }
}

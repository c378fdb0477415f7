import Foundation
import Testing

/// A checkpoint written by `abn train` loads into the project's PyTorch model
/// (python/abn_torch.py load) and gives the test metrics `abn eval` gives. Needs python3 with
/// torch, numpy, pyyaml and pillow; reported as skipped, with the reason, without them.
@Suite("PyTorch interop")
struct PyTorchInteropTests {
    /// Cancels the test (reported as skipped, with the reason) without python3, torch, numpy, pyyaml and pillow.
    func requirePython() throws {
        let probe = try BinaryRunner.command("/usr/bin/env", ["python3", "-c", "import torch, numpy, yaml, PIL"], environment: [:])
        if probe.status != 0 {
            let reason = "python3 with torch, numpy, pyyaml and pillow is not available (pip install torch numpy pyyaml pillow): \(probe.stderr.split(separator: "\n").last ?? "")"
            print("PyTorch interop: skipped: \(reason)")
            try Test.cancel("skipped: \(reason)")
        }
    }

    @Test("python/abn_torch.py load reproduces abn eval on a DeepLab checkpoint: mIoU, per-class IoU and loss")
    func segmentationMatchesEval() throws {
        try requirePython()
        let dir = runDirectory("interop-seg")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let train = try BinaryRunner.run(["train", "--config", "configs/tiny-seg.yaml", "--max-steps", "24", "--run-dir", dir, "--set", "train.evaluate=false"])
        try #require(train.status == 0, "stderr: \(train.stderr)")
        let checkpoint = dir + "/checkpoints/step-00000024.safetensors"
        let ours = try #require(try BinaryRunner.run(["eval", "--checkpoint", checkpoint, "--json"]).jsonLines.first)
        let theirs = try BinaryRunner.command("/usr/bin/env", ["python3", "python/abn_torch.py", "load", checkpoint], environment: [:])
        let b = try #require(theirs.jsonLines.first, "abn_torch.py printed no JSON: \(theirs.stderr)")
        print("PyTorch interop: DeepLab mIoU abn \(ours["test_miou"] ?? "?"), PyTorch \(b["test_miou"] ?? "?")")
        let miou = try #require(ours["test_miou"] as? Double), torchMIoU = try #require(b["test_miou"] as? Double)
        #expect(abs(miou - torchMIoU) <= 0.002, "mIoU \(miou) in abn, \(torchMIoU) in PyTorch")
        let iou = (ours["test_iou"] as? [Any] ?? []).map { $0 as? Double }, torchIoU = (b["test_iou"] as? [Any] ?? []).map { $0 as? Double }
        #expect(iou.count == 11 && torchIoU.count == 11)
        for (x, y) in zip(iou, torchIoU) { #expect(abs((x ?? -1) - (y ?? -1)) <= 0.002, "per-class IoU \(iou) vs \(torchIoU)") }
        let loss = try #require(ours["test_loss"] as? Double), torchLoss = try #require(b["test_loss"] as? Double)
        #expect(abs(loss - torchLoss) <= 1e-4 * loss)
    }

    @Test("python/abn_torch.py load reproduces abn eval on a checkpoint")
    func loadMatchesEval() throws {
        try requirePython()
        let dir = runDirectory("interop")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let train = try BinaryRunner.run(["train", "--config", "configs/tiny.yaml", "--max-steps", "16", "--run-dir", dir,
                                          "--set", "train.evaluate=false"])
        try #require(train.status == 0, "stderr: \(train.stderr)")
        let checkpoint = dir + "/checkpoints/step-00000016.safetensors"
        let ours = try BinaryRunner.run(["eval", "--checkpoint", checkpoint, "--json"])
        let theirs = try BinaryRunner.command("/usr/bin/env", ["python3", "python/abn_torch.py", "load", checkpoint], environment: [:])
        #expect(theirs.status == 0, "stderr: \(theirs.stderr)")
        let a = try #require(ours.jsonLines.first, "abn eval printed no JSON: \(ours.stderr)")
        let b = try #require(theirs.jsonLines.first, "abn_torch.py printed no JSON: \(theirs.stderr)")
        print("PyTorch interop: abn eval \(a["test_accuracy"] ?? "?") / \(a["test_loss"] ?? "?"), PyTorch \(b["test_accuracy"] ?? "?") / \(b["test_loss"] ?? "?")")
        let accuracy = try #require(a["test_accuracy"] as? Double), loss = try #require(a["test_loss"] as? Double)
        #expect(b["samples"] as? Int == a["samples"] as? Int)
        #expect(b["test_accuracy"] as? Double == accuracy)
        let torchLoss = try #require(b["test_loss"] as? Double)
        #expect(abs(torchLoss - loss) <= 1e-4 * abs(loss), "test loss \(torchLoss) in PyTorch, \(loss) in abn")
    }
}

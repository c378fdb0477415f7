import ABNData
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

    @Test("python/abn_torch.py load reproduces abn eval on a DeepLab checkpoint: mIoU, per-class IoU and loss",
          arguments: ["configs/tiny-seg.yaml", "configs/tiny-deeplabv3.yaml"])
    func segmentationMatchesEval(config: String) throws {
        try requirePython()
        let dir = runDirectory("interop-seg-\((config as NSString).lastPathComponent)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let train = try BinaryRunner.run(["train", "--config", config, "--max-steps", "24", "--run-dir", dir, "--set", "train.evaluate=false"])
        try #require(train.status == 0, "stderr: \(train.stderr)")
        let checkpoint = dir + "/checkpoints/step-00000024.safetensors"
        let ours = try #require(try BinaryRunner.run(["eval", "--checkpoint", checkpoint, "--json"]).jsonLines.first)
        let theirs = try BinaryRunner.command("/usr/bin/env", ["python3", "python/abn_torch.py", "load", checkpoint], environment: [:])
        let b = try #require(theirs.jsonLines.first, "abn_torch.py printed no JSON: \(theirs.stderr)")
        print("PyTorch interop: \(config) mIoU abn \(ours["test_miou"] ?? "?"), PyTorch \(b["test_miou"] ?? "?")")
        let miou = try #require(ours["test_miou"] as? Double), torchMIoU = try #require(b["test_miou"] as? Double)
        #expect(abs(miou - torchMIoU) <= 0.002, "mIoU \(miou) in abn, \(torchMIoU) in PyTorch")
        let iou = (ours["test_iou"] as? [Any] ?? []).map { $0 as? Double }, torchIoU = (b["test_iou"] as? [Any] ?? []).map { $0 as? Double }
        #expect(iou.count == 11 && torchIoU.count == 11)
        for (x, y) in zip(iou, torchIoU) { #expect(abs((x ?? -1) - (y ?? -1)) <= 0.002, "per-class IoU \(iou) vs \(torchIoU)") }
        let loss = try #require(ours["test_loss"] as? Double), torchLoss = try #require(b["test_loss"] as? Double)
        #expect(abs(loss - torchLoss) <= 1e-4 * loss)
    }

    /// The PyTorch reference run of a config takes longer than a working session here, so it
    /// must survive being stopped: a run stopped after epoch 1 and started again with its
    /// --state file ends where an uninterrupted run ends.
    @Test("python/abn_torch.py train continues from --state as if it had never stopped")
    func trainResumes() throws {
        try requirePython()
        let dir = runDirectory("interop-resume")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // makes tiny-seg's data set when it is missing
        let made = try BinaryRunner.run(["train", "--config", "configs/tiny-seg.yaml", "--max-steps", "1", "--run-dir", dir + "/abn", "--set", "train.evaluate=false"])
        try #require(made.status == 0, "stderr: \(made.stderr)")
        func train(_ options: [String]) throws -> [[String: Any]] {
            let run = try BinaryRunner.command("/usr/bin/env", ["python3", "python/abn_torch.py", "train", "configs/tiny-seg.yaml", "--threads", "1"] + options,
                                               environment: [:])
            try #require(run.status == 0, "stderr: \(run.stderr)")
            return run.jsonLines
        }
        let state = dir + "/state.pt"
        let whole = try train([])
        let stopped = try train(["--stop-after-epoch", "1", "--state", state])
        let resumed = try train(["--state", state])
        try #require(whole.count == 2 && stopped.count == 1 && resumed.count == 2, "lines: \(whole.count), \(stopped.count), \(resumed.count)")
        #expect(resumed[0]["train_loss"] as? Double == stopped[0]["train_loss"] as? Double, "the stored line comes first")
        let a = whole[1], b = resumed[1]
        #expect(a["epoch"] as? Int == 2 && b["epoch"] as? Int == 2)
        let lossA = try #require(a["train_loss"] as? Double), lossB = try #require(b["train_loss"] as? Double)
        let miouA = try #require(a["test_miou"] as? Double), miouB = try #require(b["test_miou"] as? Double)
        print("PyTorch interop: epoch 2 uninterrupted loss \(lossA) mIoU \(miouA), resumed loss \(lossB) mIoU \(miouB)")
        #expect(abs(lossA - lossB) <= 1e-5 * lossA && abs(miouA - miouB) <= 1e-6)
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

    /// A torchvision network with random weights, randomized BN statistics and about a quarter
    /// of its BN weights negative (python/abn_torch.py export --random), its ReLUs LeakyReLU(0.01)
    /// in PyTorch, evaluated by PyTorch as a BN network, and by `abn eval` after
    /// `abn convert torchvision`: the same test loss within 1e-4 relative.
    @Test("a converted torchvision network evaluates in abn as the BN network does in PyTorch",
          arguments: [("resnet50", "image-folder"), ("deeplabv3_resnet50", "segmentation-folder")])
    func convertedMatchesPyTorch(arch: String, format: String) throws {
        try requirePython()
        let dir = runDirectory("interop-convert-\(arch)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let segmentation = arch.hasPrefix("deeplabv3")
        let data = dir + "/data", classes = segmentation ? 11 : 3
        if segmentation {
            let scenes = try BinaryRunner.run(["data", "fmnist-scenes", "--out", data, "--size", "64", "--train", "2", "--test", "3"])
            try #require(scenes.status == 0, "abn data: \(scenes.stderr)")
        } else {
            try writeImageFolder(data, classes: classes)
        }
        let config = dir + "/config.yaml"
        let model = segmentation ? "arch: deeplabv3\n  backbone: resnet50\n  output_stride: 8" : "arch: resnet50"
        try """
        model:
          \(model)
          activation: leaky_relu
          activation_param: 0.01
        data:
          format: \(format)
          root: \(data)
          channels: 3
          image_size: [40, 40]
          crop_size: [48, 48]
          mean: [0.485, 0.456, 0.406]
          std: [0.229, 0.224, 0.225]
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let exported = dir + "/torchvision.safetensors", converted = dir + "/abn.safetensors"
        let export = try BinaryRunner.command("/usr/bin/env", ["python3", "python/abn_torch.py", "export", "--arch", arch, "--classes", String(classes),
                                                               "--random", "7", exported], environment: [:])
        try #require(export.status == 0, "export: \(export.stderr)")
        let convert = try BinaryRunner.run(["convert", "torchvision", exported, converted])
        try #require(convert.status == 0, "convert: \(convert.stderr)")
        let ours = try BinaryRunner.run(["eval", "--checkpoint", converted, "--config", config, "--json"])
        let a = try #require(ours.jsonLines.first, "abn eval printed no JSON: \(ours.stderr)")
        let theirs = try BinaryRunner.command("/usr/bin/env", ["python3", "python/abn_torch.py", "load", exported, "--config", config], environment: [:])
        let b = try #require(theirs.jsonLines.first, "abn_torch.py printed no JSON: \(theirs.stderr)")
        let loss = try #require(a["test_loss"] as? Double), torchLoss = try #require(b["test_loss"] as? Double)
        print("PyTorch interop: \(arch) converted: test loss abn \(loss), PyTorch \(torchLoss)")
        #expect(abs(loss - torchLoss) <= 1e-4 * abs(torchLoss), "test loss \(loss) in abn, \(torchLoss) in PyTorch")
        #expect(b["samples"] as? Int == a["samples"] as? Int)
    }

    /// ROOT/{train,test}/CLASS/N.png: 40x40 RGB pictures, each class its own pattern.
    func writeImageFolder(_ root: String, classes: Int) throws {
        for split in ["train", "test"] {
            for label in 0..<classes {
                for i in 0..<3 {
                    var pixels = [UInt8](repeating: 0, count: 40 * 40 * 3)
                    for p in 0..<40 * 40 { for c in 0..<3 { pixels[3 * p + c] = UInt8((p * (label + 1) + c * 50 + i * 17) % 256) } }
                    let url = URL(fileURLWithPath: "\(root)/\(split)/class\(label)/\(i).png")
                    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try Data(PNGCodec.encode(Image8(width: 40, height: 40, channels: 3, pixels: pixels))).write(to: url)
                }
            }
        }
    }
}

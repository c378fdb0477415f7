import ABNData
import ABNTestSupport
import Foundation
import Testing

/// The segmentation workload through the real binary: configs/tiny-seg.yaml (its data set is
/// made under data/ when missing), verify across ranks with 1 to 3 images per rank, the same
/// losses on any rank count, evaluation alone and on 2 ranks, pictures of predictions, and a
/// user's own folder data sets (PNG and JPEG, several sizes) with no change to the code.
@Suite("Segmentation runs", .serialized)
struct SegmentationRunTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let slices: [Int]
        var steps = 3
        /// tiny-seg has output stride 16; 8 and 4 dilate the last stages, as the default config does.
        var outputStride = 16
        var testDescription: String { "\(slices.count) rank(s), images per rank \(slices), \(steps) step(s), output stride \(outputStride)" }
    }

    /// Judged against the noise floor `abn verify` measures; 1 and 3 steps with one image per rank.
    @Test("verify: N ranks equal one process on the DeepLab network, 1 to 3 images per rank; the control differs",
          arguments: [Case(slices: [2]), Case(slices: [3]), Case(slices: [1, 1]), Case(slices: [2, 3]), Case(slices: [1, 2, 3]),
                      Case(slices: [1, 1, 1, 1], steps: 1), Case(slices: [1, 1, 1, 1]), Case(slices: [3, 2, 1, 3]), Case(slices: [2, 1], outputStride: 8),
                      Case(slices: [1, 2, 3], outputStride: 4)])
    func verify(_ c: Case) throws {
        let output = try BinaryRunner.run(["verify", "--config", "configs/tiny-seg.yaml", "--steps", String(c.steps), "--json",
                                           "--slices", c.slices.map(String.init).joined(separator: ","),
                                           "--set", "model.output_stride=\(c.outputStride)"], ranks: c.slices.count)
        let summary = try #require(output.jsonLines.first { $0["kind"] as? String == "summary" }, "no summary; exit \(output.status), stderr: \(output.stderr)")
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(summary["synchronized_matches"] as? Bool == true, "worst \(summary["worst_ratio"] ?? "?") of the tolerance")
        #expect(summary["replicas_identical"] as? Bool == true)
        let rows = output.jsonLines.filter { $0["kind"] as? String == "row" }
        #expect(rows.contains { $0["layer"] as? String == "head.global_pooling_bn" && $0["quantity"] as? String == "input_grad" })
        if c.slices.count > 1 {
            #expect(summary["control_differs"] as? Bool == true, "control \(summary["control"] ?? "?"): the check could not fail")
        }
    }

    /// Judged against the divergence of two one-process runs in valid orders (`LossYardstick`).
    /// ELU with alpha 1: leaky ReLU's derivative jumps at 0, so a value that rounding puts on
    /// the other side of it changes the gradient by the value's own size and the trajectory
    /// jumps, in one process as across ranks; `abn verify` aligns such values, a trajectory
    /// cannot. ELU's derivative is continuous there, so trajectories differ by rounding alone.
    @Test("12 steps of tiny-seg log the losses of one process on 2 to 4 ranks (2 and 3 images per rank), within the measured noise floor",
          arguments: [(2, 4), (4, 8), (3, 9)])
    func sameLosses(ranks: Int, globalBatch: Int) throws {
        let common = ["--max-steps", "12", "--set", "train.global_batch=\(globalBatch)", "--set", "train.log_every=1", "--set", "train.evaluate=false",
                      "--set", "model.activation=elu", "--set", "model.activation_param=1"]
        let yardstick = try LossYardstick.measure("configs/tiny-seg.yaml", common, name: "seg-\(ranks)")
        let many = runDirectory("seg-many-\(ranks)"), control = runDirectory("seg-unsynced-\(ranks)")
        let b = try BinaryRunner.script("launch/train.sh", ["-n", String(ranks), "configs/tiny-seg.yaml", "--run-dir", many] + common)
        #expect(b.status == 0, "stderr: \(b.stderr)")
        let c = try BinaryRunner.script("launch/train.sh", ["-n", String(ranks), "configs/tiny-seg.yaml", "--run-dir", control, "--set", "model.sync=false"] + common)
        #expect(c.status == 0, "stderr: \(c.stderr)")
        yardstick.expectMatch(try losses(many), control: try losses(control))
        #expect(yardstick.reference.last! < yardstick.reference.first!)
        for dir in [many, control] { try? FileManager.default.removeItem(atPath: dir) }
    }

    @Test("eval of a tiny-seg checkpoint agrees alone, on 2 ranks and one image per pass (in less memory), and draws predictions")
    func evaluate() throws {
        let one = runDirectory("seg-eval")
        let a = try BinaryRunner.script("launch/debug.sh", ["configs/tiny-seg.yaml", "--run-dir", one, "--max-steps", "12", "--set", "train.evaluate=false"])
        #expect(a.status == 0, "stderr: \(a.stderr)")

        let checkpoint = one + "/checkpoints/step-00000012.safetensors"
        let pictures = one + "/predictions"
        let alone = try BinaryRunner.run(["eval", "--checkpoint", checkpoint, "--json", "--save-predictions", pictures, "--predictions", "3"])
        let two = try BinaryRunner.run(["eval", "--checkpoint", checkpoint, "--json"], ranks: 2)
        let x = try #require(alone.jsonLines.first, "stderr: \(alone.stderr)"), y = try #require(two.jsonLines.first, "stderr: \(two.stderr)")
        let miou = try #require(x["test_miou"] as? Double)
        #expect(y["test_miou"] as? Double == miou && (x["test_iou"] as? [Any])?.count == 11)
        // a training batch of one image bounds evaluation to one image per forward pass: the
        // same metrics at a lower memory peak than 8 images of 64x64 per pass
        let single = try BinaryRunner.run(["eval", "--checkpoint", checkpoint, "--json", "--set", "train.global_batch=1"])
        let z = try #require(single.jsonLines.first, "stderr: \(single.stderr)")
        #expect(z["test_miou"] as? Double == miou && z["test_accuracy"] as? Double == x["test_accuracy"] as? Double)
        let peak = try #require(x["memory_peak_bytes"] as? Int), singlePeak = try #require(z["memory_peak_bytes"] as? Int)
        #expect(singlePeak < peak, "peak with one image per pass \(singlePeak) B, with eight \(peak) B")
        #expect((0...1).contains(miou) && (x["test_accuracy"] as? Double ?? 0) > 0)
        for i in 0..<3 {
            let picture = try ImageFile.decode(pictures + String(format: "/%05d.png", i))
            #expect(picture.width == 3 * 64 && picture.height == 64 && picture.channels == 3)
        }
        try? FileManager.default.removeItem(atPath: one)
    }

    @Test("a user's own segmentation folder (PNG and JPEG images of several sizes, gray masks, no classes.txt) trains and evaluates")
    func ownSegmentationFolder() throws {
        let root = runDirectory("seg-own-data"), run = runDirectory("own-run")
        func write(_ path: String, _ bytes: [UInt8]) throws {
            let url = URL(fileURLWithPath: root + "/" + path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url)
        }
        for split in ["train", "val"] {
            for i in 0..<(split == "train" ? 12 : 4) {
                let w = 40 + 4 * (i % 3), h = 36 + 2 * (i % 2)
                var pixels = [UInt8](repeating: 0, count: w * h * 3), mask = [UInt8](repeating: 0, count: w * h)
                for y in 0..<h {
                    for x in 0..<w {
                        let inside = abs(x - w / 2) < 8 + i % 4 && abs(y - h / 2) < 6
                        mask[y * w + x] = inside ? UInt8(1 + i % 3) : (x == 0 ? 255 : 0)
                        for c in 0..<3 { pixels[(y * w + x) * 3 + c] = inside ? UInt8(60 * (1 + i % 3) + 20 * c) : UInt8((x * 5 + y * 3) % 120) }
                    }
                }
                let image = Image8(width: w, height: h, channels: 3, pixels: pixels)
                let name = String(format: "img-%03d", i)
                try write("\(split)/images/\(name).\(i % 2 == 0 ? "png" : "jpg")", i % 2 == 0 ? PNGCodec.encode(image) : JPEGCodec.encode(image))
                try write("\(split)/masks/\(name).png", PNGCodec.encode(Image8(width: w, height: h, channels: 1, pixels: mask)))
            }
        }
        let settings = ["--set", "data.root=\(root)", "--set", "data.generate.kind=none", "--set", "data.crop_size=[32, 32]",
                        "--set", "train.global_batch=4", "--set", "train.epochs=2", "--run-dir", run]
        let train = try BinaryRunner.run(["train", "--config", "configs/tiny-seg.yaml"] + settings, ranks: 2)
        #expect(train.status == 0, "stderr: \(train.stderr)")
        #expect(train.stdout.contains("3 channel(s), 4 classes"), "stdout: \(train.stdout)")
        let eval = try BinaryRunner.run(["eval", "--checkpoint", run + "/checkpoints/step-00000006.safetensors", "--json"])
        let line = try #require(eval.jsonLines.first, "stderr: \(eval.stderr)")
        #expect(line["samples"] as? Int == 4 && (line["test_iou"] as? [Any])?.count == 4)
        for dir in [root, run] { try? FileManager.default.removeItem(atPath: dir) }
    }

    @Test("a user's own image-folder classification set (PNG and JPEG, gray and RGB, several sizes) trains and evaluates")
    func ownImageFolder() throws {
        let root = runDirectory("seg-own-folder"), run = runDirectory("own-folder-run")
        for split in ["train", "test"] {
            for (label, name) in ["circle", "square", "stripe"].enumerated() {
                for i in 0..<(split == "train" ? 8 : 3) {
                    let size = 20 + i % 3 * 4
                    var pixels = [UInt8](repeating: 0, count: size * size)
                    for y in 0..<size {
                        for x in 0..<size {
                            let on = label == 0 ? (x - size / 2) * (x - size / 2) + (y - size / 2) * (y - size / 2) < 36
                                : label == 1 ? abs(x - size / 2) < 5 && abs(y - size / 2) < 5 : x % 4 < 2
                            pixels[y * size + x] = on ? 220 : 30
                        }
                    }
                    let gray = Image8(width: size, height: size, channels: 1, pixels: pixels)
                    let url = URL(fileURLWithPath: "\(root)/\(split)/\(name)/\(i).\(i % 2 == 0 ? "png" : "jpg")")
                    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    let image = i % 3 == 0 ? gray.converted(toChannels: 3) : gray
                    try Data(i % 2 == 0 ? PNGCodec.encode(image) : JPEGCodec.encode(image)).write(to: url)
                }
            }
        }
        let settings = ["--set", "data.format=image-folder", "--set", "data.root=\(root)", "--set", "data.channels=1",
                        "--set", "data.image_size=[24, 24]", "--set", "data.train_limit=0", "--set", "data.test_limit=0",
                        "--set", "train.global_batch=6", "--set", "train.epochs=2", "--run-dir", run]
        let train = try BinaryRunner.run(["train", "--config", "configs/tiny.yaml"] + settings, ranks: 2)
        #expect(train.status == 0, "stderr: \(train.stderr)")
        #expect(train.stdout.contains("1 channel(s), 3 classes"), "stdout: \(train.stdout)")
        let eval = try BinaryRunner.run(["eval", "--checkpoint", run + "/checkpoints/step-00000008.safetensors", "--json"])
        let line = try #require(eval.jsonLines.first, "stderr: \(eval.stderr)")
        #expect(line["samples"] as? Int == 9 && line["test_accuracy"] != nil)
        for dir in [root, run] { try? FileManager.default.removeItem(atPath: dir) }
    }
}

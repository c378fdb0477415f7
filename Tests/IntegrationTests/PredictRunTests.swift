import ABNData
import ABNTestSupport
import Foundation
import Testing

/// Full-resolution evaluation (`eval.*`) and `abn predict` through the binary, on torchvision's
/// DeepLabV3 (ResNet-18 at base width 4) trained a few steps on an ADE20K set from
/// `LayoutWriter`, whose test images have three sizes, and on a 512x256 image.
@Suite("Full-resolution evaluation and abn predict", .serialized)
struct PredictRunTests {
    /// An ADE20K set and the checkpoint of 12 steps of training on it, in fresh folders named
    /// after `name`; remove them with `removeAll` (they are removed here when training fails).
    func trained(_ name: String) throws -> (root: String, run: String, checkpoint: String) {
        let root = runDirectory("\(name)-ade20k"), run = runDirectory("\(name)-run")
        do {
            try LayoutWriter.write(.ade20k, root: root, train: 6, test: 3)
            let settings = ["data.root=\(root)", "model.backbone=resnet18", "model.base_width=4", "model.head_width=8", "data.crop_size=[48, 48]",
                            "train.global_batch=2", "train.warmup_steps=1", "train.lr=0.05", "train.evaluate=false", "checkpoint.every=0"]
            let output = try BinaryRunner.run(["train", "--config", "configs/ade20k-deeplabv3-resnet50.yaml", "--run-dir", run, "--max-steps", "12"]
                                              + settings.flatMap { ["--set", $0] })
            guard output.status == 0 else { throw RunnerError("training the ADE20K checkpoint failed: \(output.stderr)") }
        } catch {
            removeAll(root, run)
            throw error
        }
        return (root, run, run + "/checkpoints/step-00000012.safetensors")
    }

    func removeAll(_ directories: String...) {
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// The JSON line of `abn eval --json` on `checkpoint` with `arguments`.
    func evaluation(_ checkpoint: String, _ arguments: [String]) throws -> [String: Any] {
        let output = try BinaryRunner.run(["eval", "--checkpoint", checkpoint, "--json"] + arguments)
        return try #require(output.jsonLines.first, "exit \(output.status), stderr: \(output.stderr)")
    }

    /// Writes `bytes` to `path`, making its folders.
    func write(_ bytes: [UInt8], to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// The files under `directory`, as paths below it, sorted.
    func files(under directory: String) -> [String] {
        ((FileManager.default.enumerator(atPath: directory)?.allObjects as? [String]) ?? []).filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: directory + "/" + $0, isDirectory: &isDirectory) && !isDirectory.boolValue
        }.sorted()
    }

    @Test("eval: sliding windows that cover each image give the metrics of whole images, exactly")
    func windowsCoveringTheImages() throws {
        let (root, run, checkpoint) = try trained("predict-covering")
        defer { removeAll(root, run) }
        // The three test images differ in size, so the whole-image path forwards one per pass too
        // (it groups consecutive images of one size); a window covering an image is that image's
        // forward pass, resized to it and divided by one window: the same logits.
        let whole = try evaluation(checkpoint, [])
        let slide = try evaluation(checkpoint, ["--set", "eval.mode=slide", "--set", "eval.crop=[64, 80]"])
        #expect(whole["samples"] as? Int == 3)
        for key in ["test_miou", "test_accuracy", "test_loss"] {
            #expect(slide[key] as? Double == whole[key] as? Double, "\(key): slide \(slide[key] ?? "-"), whole \(whole[key] ?? "-")")
        }
        #expect("\(slide["test_iou"] ?? "")" == "\(whole["test_iou"] ?? "")")
    }

    @Test("predict: one palette PNG of each input's size, sub-folders kept, overlays, the same masks on 2 ranks, no data set needed")
    func predictFolder() throws {
        let (root, run, checkpoint) = try trained("predict-folder")
        let inputs = runDirectory("predict-inputs"), alone = runDirectory("predict-alone"), two = runDirectory("predict-two")
        defer { removeAll(root, run, inputs, alone, two) }
        // the three test images (JPEG, three sizes), one of them as a PNG, in nested folders, and a gray PNG of another size
        let test = try ADE20K.open(root: root, split: "validation").images
        try write(ImageFile.bytes(test[0]), to: inputs + "/first.jpg")
        try write(PNGCodec.encode(ImageFile.decode(test[1])), to: inputs + "/more/second.png")
        try write(ImageFile.bytes(test[2]), to: inputs + "/more/deeper/third.jpg")
        let gray = Image8(width: 37, height: 23, channels: 1, pixels: (0..<37 * 23).map { UInt8($0 * 7 % 256) })
        try write(PNGCodec.encode(gray), to: inputs + "/gray.png")
        let sizes = ["first": (64, 48), "more/second": (56, 56), "more/deeper/third": (72, 40), "gray": (37, 23)]

        // overlapping windows; one training image per step makes every rank count batch two windows per forward pass
        let settings = ["eval.mode=slide", "eval.crop=[32, 32]", "train.global_batch=1", "data.root=/nonexistent/abn-data"].flatMap { ["--set", $0] }
        let a = try BinaryRunner.run(["predict", "--checkpoint", checkpoint, "--out", alone, "--overlay", inputs] + settings)
        #expect(a.status == 0, "stderr: \(a.stderr)")
        #expect(a.stdout.contains("wrote 4 masks and overlays"), "stdout: \(a.stdout)")
        let b = try BinaryRunner.run(["predict", "--checkpoint", checkpoint, "--out", two, inputs] + settings, ranks: 2)
        #expect(b.status == 0, "stderr: \(b.stderr)")
        #expect(files(under: alone) == sizes.keys.flatMap { [$0 + ".png", $0 + "_overlay.png"] }.sorted())
        #expect(files(under: two) == sizes.keys.map { $0 + ".png" }.sorted())
        for (name, (width, height)) in sizes {
            let path = alone + "/" + name + ".png"
            let info = try PNGCodec.info(ImageFile.bytes(path), source: path)
            #expect(info.width == width && info.height == height && info.kind == .palette, "\(name): \(info)")
            let mask = try ImageFile.decodeMask(path)
            #expect(mask.pixels.allSatisfy { $0 < 150 }, "\(name): a class beyond ADE20K's 150")
            #expect(try ImageFile.decodeMask(two + "/" + name + ".png") == mask, "\(name): 2 ranks predict another mask")
            let overlay = try ImageFile.decode(alone + "/" + name + "_overlay.png")
            #expect(overlay.width == width && overlay.height == height && overlay.channels == 3, "\(name) overlay")
        }
    }

    @Test("predict --ids stored writes the data set's ids: ADE20K's class + 1; a class the layout's table lacks is refused")
    func storedIDs() throws {
        let (root, run, checkpoint) = try trained("predict-ids")
        let classes = runDirectory("predict-ids-classes"), stored = runDirectory("predict-ids-stored"), refused = runDirectory("predict-ids-refused")
        defer { removeAll(root, run, classes, stored, refused) }
        let images = try ADE20K.open(root: root, split: "validation").images
        let a = try BinaryRunner.run(["predict", "--checkpoint", checkpoint, "--out", classes] + images)
        let b = try BinaryRunner.run(["predict", "--checkpoint", checkpoint, "--out", stored, "--ids", "stored"] + images)
        #expect(a.status == 0 && b.status == 0, "stderr: \(a.stderr) \(b.stderr)")
        for name in files(under: classes) {
            let predicted = try ImageFile.decodeMask(classes + "/" + name), ids = try ImageFile.decodeMask(stored + "/" + name)
            let info = try PNGCodec.info(ImageFile.bytes(stored + "/" + name), source: name)
            #expect(info.kind != .palette, "\(name): \(info)")
            #expect(ids.pixels == predicted.pixels.map { $0 + 1 }, "\(name): ADE20K stores class c as c + 1")
        }
        #expect(files(under: classes).count == 3 && files(under: stored) == files(under: classes))
        // the 150-class network under Cityscapes' table, which stores 19 classes
        let c = try BinaryRunner.run(["predict", "--checkpoint", checkpoint, "--out", refused, "--ids", "stored", "--set", "data.format=cityscapes"] + images)
        #expect(c.status == 1 && c.stderr.contains("class 19 is stored under no id"), "stderr: \(c.stderr)")
        let d = try BinaryRunner.run(["predict", "--checkpoint", checkpoint, "--out", refused, "--ids", "stored", "--overlay"] + images)
        #expect(d.status != 0 && d.stderr.contains("--overlay and --ids stored"), "stderr: \(d.stderr)")
        #expect(files(under: refused).isEmpty)
    }

    @Test("the mIoU abn eval prints is the mIoU of the masks abn predict writes against the ground truth, with the same eval settings")
    func predictionsGiveTheEvaluation() throws {
        let (root, run, checkpoint) = try trained("predict-metrics")
        let out = runDirectory("predict-validation")
        defer { removeAll(root, run, out) }
        let settings = ["eval.mode=slide", "eval.crop=[32, 32]", "eval.scales=[0.75, 1.0]", "eval.flip=true"].flatMap { ["--set", $0] }
        let evaluated = try #require(try evaluation(checkpoint, settings)["test_miou"] as? Double)
        let predicted = try BinaryRunner.run(["predict", "--checkpoint", checkpoint, "--out", out, root + "/images/validation"] + settings)
        #expect(predicted.status == 0, "stderr: \(predicted.stderr)")

        // the confusion matrix of the valid pixels, truth by prediction, from the files
        let test = try ADE20K.open(root: root, split: "validation"), classes = test.classNames.count
        var confusion = [[Double]](repeating: [Double](repeating: 0, count: classes), count: classes)
        var predictedClasses = Set<UInt8>()
        for index in 0..<test.count {
            guard case .mask(let truth) = try test.sample(index).target else { Issue.record("no mask for test image \(index)"); continue }
            let name = ((test.images[index] as NSString).lastPathComponent as NSString).deletingPathExtension
            let mask = try ImageFile.decodeMask(out + "/" + name + ".png")
            try #require(mask.width == truth.width && mask.height == truth.height, "\(name): the mask is not the image's size")
            for (label, guess) in zip(truth.pixels, mask.pixels) where label != ignoreLabel { confusion[Int(label)][Int(guess)] += 1 }
            predictedClasses.formUnion(mask.pixels)
        }
        #expect(predictedClasses.count > 1, "the masks hold one class: the comparison would not see a mask of another image or size")
        var ious: [Double] = []
        for c in 0..<classes {
            let tp = confusion[c][c], fn = confusion[c].reduce(0, +) - tp, fp = confusion.reduce(0) { $0 + $1[c] } - tp
            if tp + fp + fn > 0 { ious.append(tp / (tp + fp + fn)) }
        }
        let miou = ious.reduce(0, +) / Double(ious.count)
        // the same IoUs from the same counts; added in another order they would differ by one
        // rounding per addition at most
        #expect(abs(miou - evaluated) <= Double(ious.count) * 0x1p-53, "the masks' mIoU \(miou), abn eval's \(evaluated)")
    }

    @Test("eval of a 512x256 image in 64x64 windows peaks below eval of the whole image in the memory ledger")
    func windowsBoundMemory() throws {
        let root = runDirectory("predict-large"), run = runDirectory("predict-large-run")
        defer { removeAll(root, run) }
        // a segmentation folder: training images of 64x64, one test image of 512x256; class = band of rows
        for (split, count, width, height) in [("train", 4, 64, 64), ("test", 1, 512, 256)] {
            for i in 0..<count {
                var pixels = [UInt8](repeating: 0, count: width * height * 3), mask = [UInt8](repeating: 0, count: width * height)
                for y in 0..<height {
                    for x in 0..<width {
                        let label = (y * 4 / height + i) % 4
                        mask[y * width + x] = UInt8(label)
                        for c in 0..<3 { pixels[(y * width + x) * 3 + c] = UInt8((label * 60 + c * 40 + (x + y) % 16) % 256) }
                    }
                }
                try write(PNGCodec.encode(Image8(width: width, height: height, channels: 3, pixels: pixels)), to: "\(root)/\(split)/images/\(i).png")
                try write(PNGCodec.encode(Image8(width: width, height: height, channels: 1, pixels: mask)), to: "\(root)/\(split)/masks/\(i).png")
            }
        }
        let settings = ["data.root=\(root)", "data.generate.kind=none", "train.global_batch=2", "train.evaluate=false"].flatMap { ["--set", $0] }
        let train = try BinaryRunner.run(["train", "--config", "configs/tiny-deeplabv3.yaml", "--run-dir", run, "--max-steps", "1"] + settings)
        #expect(train.status == 0, "stderr: \(train.stderr)")
        let checkpoint = run + "/checkpoints/step-00000001.safetensors"
        let whole = try #require(try evaluation(checkpoint, [])["memory_peak_bytes"] as? Int)
        let slide = try #require(try evaluation(checkpoint, ["--set", "eval.mode=slide", "--set", "eval.crop=[64, 64]"])["memory_peak_bytes"] as? Int)
        #expect(slide < whole, "ledger peak in 64x64 windows \(slide) B, whole image \(whole) B")
    }

    @Test("predict refuses a classifier's checkpoint with a sentence, and writes nothing")
    func classifierRefused() throws {
        let run = runDirectory("predict-classifier"), out = runDirectory("predict-classifier-out")
        defer { removeAll(run, out) }
        let train = try BinaryRunner.run(["train", "--config", "configs/tiny.yaml", "--run-dir", run, "--max-steps", "1",
                                          "--set", "train.evaluate=false", "--set", "train.global_batch=4"])
        #expect(train.status == 0, "stderr: \(train.stderr)")
        try write(PNGCodec.encode(Image8(width: 28, height: 28, channels: 1, pixels: [UInt8](repeating: 90, count: 784))), to: "\(out)-in/a.png")
        defer { removeAll("\(out)-in") }
        let predict = try BinaryRunner.run(["predict", "--checkpoint", run + "/checkpoints/step-00000001.safetensors", "--out", out, "\(out)-in/a.png"])
        #expect(predict.status == 1)
        #expect(predict.stderr.contains("model.arch resnet is a classification network; predict draws masks of segmentation networks."), "\(predict.stderr)")
        #expect(files(under: out).isEmpty)
    }
}

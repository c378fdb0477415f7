import ABNTestSupport
import Foundation
import Testing

/// The shipped configs of the public layouts, with only data.root (and a small backbone)
/// changed, train on sets written in each layout (`LayoutWriter`) and evaluate.
@Suite("Cityscapes, Pascal VOC, ADE20K, Mapillary Vistas and COCO-Stuff layouts through the shipped configs", .serialized)
struct LayoutRunTests {
    @Test("a few steps of training and an evaluation per layout", arguments: LayoutWriter.Layout.allCases)
    func trainAndEvaluate(layout: LayoutWriter.Layout) throws {
        let root = runDirectory("layout-\(layout.rawValue)"), run = runDirectory("layout-run-\(layout.rawValue)")
        defer { for dir in [root, run] { try? FileManager.default.removeItem(atPath: dir) } }
        try LayoutWriter.write(layout, root: root, train: 4, test: 2)
        let small = ["--set", "model.backbone=resnet18", "--set", "model.base_width=4", "--set", "model.head_width=8",
                     "--set", "data.crop_size=[64, 64]", "--set", "train.global_batch=2", "--set", "train.warmup_steps=1"]
        let config = "configs/\(layout.rawValue)-deeplabv3-resnet50.yaml"
        let train = try BinaryRunner.run(["train", "--config", config, "--set", "data.root=\(root)", "--max-steps", "2", "--run-dir", run] + small,
                                         ranks: 2)
        #expect(train.status == 0, "stderr: \(train.stderr)")
        let classes = ["cityscapes": 19, "voc": 21, "ade20k": 150, "vistas": 19, "coco-stuff": 171][layout.rawValue]!
        #expect(train.stdout.contains("3 channel(s), \(classes) classes"), "stdout: \(train.stdout)")
        let eval = try BinaryRunner.run(["eval", "--checkpoint", run + "/checkpoints/step-00000002.safetensors", "--json"])
        let line = try #require(eval.jsonLines.first, "stderr: \(eval.stderr)")
        #expect(line["samples"] as? Int == 2 && (line["test_iou"] as? [Any])?.count == classes, "\(line)")
    }
}

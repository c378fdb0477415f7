import Foundation
import Testing

/// `abn convert torchvision` on a torchvision ResNet-18 state dict (base width 4, one input
/// channel, 10 classes; python/make_conversion_fixture.py), then `abn eval` of the result on
/// configs/tiny.yaml's Fashion-MNIST test images against PyTorch's float64 metrics of the same
/// network with LeakyReLU(0.01).
@Suite("abn convert torchvision")
struct ConvertTests {
    static let fixtures = BinaryRunner.packageRoot.appendingPathComponent("Tests/Fixtures/torchvision")
    let stateDict = fixtures.appendingPathComponent("conversion_resnet18_w4_gray.safetensors").path
    let model = ["--config", "configs/tiny.yaml", "--set", "model.arch=resnet18", "--set", "model.base_width=4"]

    /// The JSON object of the fixture's expected numbers.
    func expected() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("conversion_resnet18_w4_gray.json"))) as! [String: Any]
    }

    @Test("convert reports the folded weights; eval of the result gives PyTorch's test loss and accuracy")
    func convertThenEvaluate() throws {
        guard FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist") else {
            try Test.cancel("skipped: the Fashion-MNIST files are missing (apt-get install dataset-fashion-mnist)")
        }
        let dir = runDirectory("convert")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/resnet18.safetensors", want = try expected()
        let convert = try BinaryRunner.run(["convert", "torchvision", stateDict, out, "--json"])
        try #require(convert.status == 0, "stderr: \(convert.stderr)")
        let report = try #require(convert.jsonLines.first, "stdout: \(convert.stdout)")
        #expect(report["folded_weights"] as? Int == want["negative_weights"] as? Int)
        #expect((report["folded_layers"] as? [String])?.count == want["folded_layers"] as? Int)
        #expect(report["norm_layers"] as? Int == 20 && report["below_eps"] as? Int == 0 && report["tensors"] as? Int == 102)

        let eval = try BinaryRunner.run(["eval", "--checkpoint", out, "--json"] + model)
        try #require(eval.status == 0, "stderr: \(eval.stderr)")
        let got = try #require(eval.jsonLines.first, "stdout: \(eval.stdout)")
        let loss = try #require(got["test_loss"] as? Double), wantLoss = try #require(want["loss"] as? Double)
        let tolerance = 10 * (want["loss_floor"] as? Double ?? 0) + 4 * Double(Float(wantLoss).ulp)
        print("abn convert torchvision: test loss \(loss), PyTorch float64 \(wantLoss), tolerance \(tolerance)")
        #expect(got["samples"] as? Int == want["test_limit"] as? Int)
        #expect(abs(loss - wantLoss) <= tolerance)
        let accuracy = try #require(got["test_accuracy"] as? Double), wantAccuracy = try #require(want["accuracy"] as? Double)
        #expect(abs(accuracy - wantAccuracy) <= 1.0 / 500, "accuracy \(accuracy), PyTorch \(wantAccuracy)")

        let withoutConfig = try BinaryRunner.run(["eval", "--checkpoint", out])
        #expect(withoutConfig.status == 1 && withoutConfig.stderr.contains("--config FILE"), "stderr: \(withoutConfig.stderr)")
        let otherEps = try BinaryRunner.run(["eval", "--checkpoint", out, "--json", "--set", "model.eps=1e-3"] + model)
        #expect(otherEps.stderr.contains("converted for model.eps 1e-05"), "stderr: \(otherEps.stderr)")
    }
}

import Foundation
import Testing

/// `abn bench step --config`: the training step of a config's model, timed per mode with its
/// memory peaks, without its data set.
@Suite("Bench step of a config's model")
struct BenchStepConfigTests {
    @Test("the segmentation default at a 64x64 crop: positive step times and a resident peak above the ledger's")
    func segmentationDefault() throws {
        let output = try BinaryRunner.run(["bench", "step", "--config", "configs/fmnist-scenes-deeplab.yaml", "--crop", "64", "--batch", "2",
                                           "--repeats", "1", "--warmup", "0", "--json"])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        let lines = output.jsonLines
        #expect(lines.compactMap { $0["mode"] as? String }.sorted() == ["checkpoint", "inplace", "standard"], "stdout: \(output.stdout)")
        for line in lines {
            let step = try #require(line["step_s"] as? Double, "line: \(line)")
            #expect(step > 0, "line: \(line)")
            #expect(line["crop"] as? [Int] == [64, 64], "line: \(line)")
            #expect(line["batch"] as? Int == 2, "line: \(line)")
            let ledger = try #require(line["peak_bytes"] as? Int, "line: \(line)")
            let resident = try #require(line["peak_rss_bytes"] as? Int, "line: \(line)")
            #expect(ledger > 0 && resident >= ledger, "line: \(line)")
        }
    }

    @Test("a config whose input is known only from its data set names the keys to set")
    func unknownInput() throws {
        let output = try BinaryRunner.run(["bench", "step", "--config", "configs/tiny.yaml", "--batch", "2", "--repeats", "1", "--warmup", "0"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("set data.channels and model.classes"), "stderr: \(output.stderr)")
    }
}

import Foundation
import Testing

/// The benchmarks of a config whose data set is not made yet: `data.generate` says what the
/// set holds (channels, classes), which is all a benchmark needs, and nothing is generated.
@Suite("Benchmarks without the data set")
struct BenchWithoutDataTests {
    let bench = ["bench", "memory", "--config", "configs/fmnist-scenes-deeplab.yaml", "--batch", "2", "--crop", "32", "--mode", "inplace"]

    @Test("bench memory of the segmentation default measures its model without making its data set")
    func fromGenerate() throws {
        let missing = runDirectory("bench-data")
        let output = try BinaryRunner.run(bench + ["--set", "data.root=\(missing)"])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(output.stdout.contains("3-channel inputs, 11 classes"), "stdout: \(output.stdout)")
        let row = try #require(output.stdout.split(separator: "\n").first { $0.hasPrefix("inplace") }, "stdout: \(output.stdout)")
        #expect(Array(row.split(separator: " ").prefix(3)) == ["inplace", "2", "32"], "row: \(row)")
        #expect(!FileManager.default.fileExists(atPath: missing), "the benchmark made the data set")
        // model.classes, when the config sets it, wins over the set's classes
        let set = try BinaryRunner.run(bench + ["--set", "data.root=\(missing)", "--set", "model.classes=5"])
        #expect(set.stdout.contains("3-channel inputs, 5 classes"), "stdout: \(set.stdout), stderr: \(set.stderr)")
    }

    @Test("without data.generate the missing folder is still an error that names it")
    func withoutGenerate() throws {
        let missing = runDirectory("bench-no-data")
        let output = try BinaryRunner.run(bench + ["--set", "data.root=\(missing)", "--set", "data.generate.kind=none"])
        #expect(output.status != 0)
        #expect(output.stderr.contains(missing), "stderr: \(output.stderr)")
    }
}

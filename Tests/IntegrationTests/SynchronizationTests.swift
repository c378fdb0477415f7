import Foundation
import Testing

/// Cross-rank equivalence of synchronized InPlace-ABN, through the real binary under mpirun:
/// `abn verify` compares N ranks against one process on the concatenated batch (norm outputs,
/// input gradients, and every parameter and running statistic after 5 SGD steps) against the
/// noise floor it measures (a second one-process reference in another valid order), and runs
/// the unsynchronized negative control, which must miss that tolerance by orders of magnitude.
@Suite("Synchronized norm layers across MPI ranks", .serialized)
struct SynchronizationTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let ranks: Int
        let slices: String?
        var testDescription: String { "\(ranks) rank(s)" + (slices.map { ", slices \($0)" } ?? ", global batch 31") }
    }

    static let cases: [Case] = [
        Case(ranks: 1, slices: nil),
        Case(ranks: 2, slices: nil),
        Case(ranks: 3, slices: nil),
        Case(ranks: 4, slices: nil),
        Case(ranks: 4, slices: "2,3,4,5"),  // rank + 2 samples
        Case(ranks: 3, slices: "0,5,6"),    // a rank with no samples still takes part
    ]

    @Test("N ranks equal one process on the concatenated batch; unsynchronized BN does not", arguments: cases)
    func equivalence(_ c: Case) throws {
        var arguments = ["verify", "--config", "configs/tiny.yaml", "--steps", "5", "--set", "train.global_batch=31", "--json"]
        if let slices = c.slices { arguments += ["--slices", slices] }
        let output = try BinaryRunner.run(arguments, ranks: c.ranks)
        let summary = output.jsonLines.first { $0["kind"] as? String == "summary" }
        try #require(summary != nil, "no summary line; exit \(output.status), stderr: \(output.stderr)")
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(summary!["world_size"] as? Int == c.ranks)
        #expect(summary!["synchronized_matches"] as? Bool == true, "worst \(summary!["worst_ratio"] ?? "?") of the tolerance")
        #expect(summary!["replicas_identical"] as? Bool == true)
        let rows = output.jsonLines.filter { $0["kind"] as? String == "row" }
        // outputs and input gradients of every norm layer, and parameters and running stats
        #expect(rows.contains { ($0["quantity"] as? String) == "input_grad" })
        #expect(rows.contains { ($0["quantity"] as? String)?.hasPrefix("running_var") == true })
        #expect(rows.contains { ($0["quantity"] as? String)?.hasPrefix("weight") == true })
        // the floor is measured, not zero, wherever values were computed
        #expect(rows.contains { ($0["floor"] as? Double ?? 0) > 0 })
        if c.ranks > 1 {
            #expect(summary!["control_differs"] as? Bool == true, "control \(summary!["control"] ?? "?"): the check could not fail")
        }
    }

    /// With one image per rank the ASPP's pooling norm normalizes as many values as there are
    /// ranks; SGD steps on such an ill-conditioned layer amplify rounding from step to step, so
    /// after a few steps one alternative order no longer samples the spread of the orders well
    /// (3 ranks of one image: 0.29 of the tolerance after 2 steps, 1.17 after 3). One step
    /// checks those; two images per rank run 3 steps.
    @Test("torchvision's DeepLabV3 on N ranks equals one process, with one or two images per rank",
          arguments: [("1,1", 1), ("2,2", 3), ("1,1,1", 1), ("2,2,2", 3)])
    func deepLabV3(slices: String, steps: Int) throws {
        let output = try BinaryRunner.run(["verify", "--config", "configs/tiny-deeplabv3.yaml", "--steps", String(steps), "--slices", slices, "--json"],
                                          ranks: slices.split(separator: ",").count)
        let summary = try #require(output.jsonLines.first { $0["kind"] as? String == "summary" }, "no summary; stderr: \(output.stderr)")
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(summary["synchronized_matches"] as? Bool == true, "worst \(summary["worst_ratio"] ?? "?") of the tolerance")
        #expect(summary["replicas_identical"] as? Bool == true)
        #expect(summary["control_differs"] as? Bool == true, "control \(summary["control"] ?? "?"): the check could not fail")
        let layers = Set(output.jsonLines.compactMap { $0["layer"] as? String })
        for probed in ["backbone.bn1", "backbone.layer1.0.downsample.1", "backbone.layer4.2.join", "classifier.0.convs.4.2", "classifier.2"] {
            #expect(layers.contains(probed), "verify did not compare \(probed)")
        }
    }

    @Test("verify fails when one layer's forward reduction is skipped on purpose",
          arguments: [("configs/tiny.yaml", "stage2.0.bn1", "6,6"), ("configs/tiny.yaml", "head_norm", "6,6"),
                      ("configs/tiny-seg.yaml", "head.map_bn", "1,1,1,1"),
                      ("configs/tiny-deeplabv3.yaml", "backbone.layer3.0.bn3", "1,1"),
                      ("configs/tiny-deeplabv3.yaml", "classifier.0.convs.4.2", "2,2")])
    func brokenSynchronization(config: String, layer: String, slices: String) throws {
        let output = try BinaryRunner.run(["verify", "--config", config, "--steps", "1", "--slices", slices, "--json"],
                                          ranks: slices.split(separator: ",").count, environment: ["ABN_SKIP_REDUCTION": layer])
        let summary = try #require(output.jsonLines.first { $0["kind"] as? String == "summary" }, "no summary; stderr: \(output.stderr)")
        #expect(output.status != 0)
        #expect(summary["synchronized_matches"] as? Bool == false)
        let outside = output.jsonLines.filter { $0["kind"] as? String == "row" && $0["within_tolerance"] as? Bool == false }
        #expect(outside.contains { $0["layer"] as? String == layer && $0["quantity"] as? String == "output" },
                "the skipped layer's output is not among the quantities outside: \(outside.map { $0["layer"] ?? "" })")
    }

    @Test("a rank count that does not match --slices ends every rank with a message, not a hang")
    func mismatchAborts() throws {
        let output = try BinaryRunner.run(["verify", "--config", "configs/tiny.yaml", "--slices", "3,4"], ranks: 3)
        #expect(output.status != 0)
        #expect(output.stderr.contains("give one count per rank"), "stderr: \(output.stderr)")
    }
}

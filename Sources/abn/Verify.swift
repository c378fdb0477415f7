import ABNTraining
import ArgumentParser
import Foundation

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that synchronized InPlace-ABN across the current ranks equals one process on the whole batch.",
        discussion: """
        Runs --steps training steps of the config on every rank with synchronized norm layers, runs \
        the same global batches in one replica on rank 0, and compares per layer the norm layers' \
        outputs and input gradients (first step) and every parameter and running statistic after the \
        last step. The noise floor of each quantity is measured on the spot: a second one-process \
        reference computes the same steps in another valid order (the batch reversed, the products on \
        the other GEMM library), and the distance between the two references is what rounding alone \
        makes on this processor for this model. N ranks pass within --floor-multiple floors plus \
        --atol times the quantity's largest magnitude. The same ranks with unsynchronized norm \
        layers, a negative control, must miss that tolerance by --decisive-margin times somewhere, or \
        the check says it cannot decide. Exits with 1 when N ranks are outside, the replicas disagree, \
        or the control does not decide. Run it under mpirun (launch/verify.sh -n N CONFIG) or alone.
        """)

    @Option(help: "The YAML config (model and data).") var config: String
    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set train.global_batch=31 (repeatable).")
    var overrides: [String] = []
    @Option(parsing: .unconditional, help: "Training steps to compare.") var steps = 5
    @Option(help: "Samples per rank, comma-separated (default: train.global_batch split as evenly as possible).")
    var slices: String?
    @Option(parsing: .unconditional, help: "How many noise floors a difference may reach.") var floorMultiple = 10.0
    @Option(parsing: .unconditional, help: "A difference may also reach this times the quantity's largest magnitude.") var atol = 1e-6
    @Option(parsing: .unconditional, help: "How many tolerances the negative control must exceed somewhere.") var decisiveMargin = 100.0
    @Flag(help: "Print JSON lines instead of a table.") var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps).") }
        guard floorMultiple >= 1, atol >= 0, decisiveMargin >= 1 else {
            throw ValidationError("--floor-multiple and --decisive-margin must be at least 1 and --atol at least 0.")
        }
        if let slices, parseCounts(slices) == nil {
            throw ValidationError("--slices must be non-negative integers separated by commas, e.g. 2,3,4; got '\(slices)'.")
        }
    }

    func run() throws {
        threads.apply()
        let coordinator = Coordinator.launch()
        coordinator.run {
            let config = try coordinator.loadConfig(path: self.config, overrides: overrides)
            try coordinator.requireAgreement("config", try config.yaml())
            let counts = slices.flatMap(parseCounts) ?? BatchSlices(even: config.train.globalBatch, ranks: coordinator.comm.size).counts
            let check = SynchronizationCheck(config: config, steps: steps, slices: BatchSlices(counts: counts),
                                             floorMultiple: floorMultiple, atol: atol, decisiveMargin: decisiveMargin)
            let result = try check.run(coordinator, progress: { if !json { coordinator.say("verify: " + $0) } })
            if coordinator.isRoot { report(result, check) }
            // every rank learns the verdict and ends normally: an abort here could leave mpirun hanging
            let verdict = coordinator.broadcast(coordinator.isRoot ? (result.passed ? "passed" : "failed") : "", what: "the verdict")
            if verdict != "passed" {
                if coordinator.isRoot { FileHandle.standardError.write(Data("abn: error: verification failed (see above).\n".utf8)) }
                Foundation.exit(1)
            }
        }
    }

    private func report(_ result: SynchronizationCheck.Result, _ check: SynchronizationCheck) {
        let verdict: String
        switch result.control {
        case nil: verdict = "not applicable with one rank (unsynchronized equals synchronized)"
        case .differs?: verdict = String(format: "differs by up to %.3g tolerances, as it must", result.controlMargin ?? 0)
        case .undecided?: verdict = String(format: "CANNOT DECIDE: it differs by at most %.3g tolerances, under the %.3g needed",
                                           result.controlMargin ?? 0, check.decisiveMargin)
        case .matches?: verdict = "DOES NOT DIFFER: the check cannot tell synchronization apart"
        }
        if json {
            for r in result.rows {
                var line: [String: Any] = ["kind": "row", "layer": r.layer, "quantity": r.quantity, "scale": r.scale, "floor": r.floor,
                                           "distance": r.distance, "tolerance": r.tolerance, "within_tolerance": r.withinTolerance]
                if let c = r.controlDistance { line["control_distance"] = c }
                printJSONLine(line)
            }
            var summary: [String: Any] = ["kind": "summary", "world_size": check.slices.counts.count, "slices": check.slices.counts,
                                          "steps": check.steps, "floor_order": result.floorOrder, "floor_multiple": check.floorMultiple,
                                          "atol": check.atol, "passed": result.passed, "synchronized_matches": result.synchronizedMatches,
                                          "replicas_identical": result.replicasIdentical, "worst_ratio": result.worstRatio,
                                          "kink_values": result.kinkValues, "aligned_reference": result.aligned.reference,
                                          "aligned_floor": result.aligned.floor]
            if let control = result.control {
                summary["control"] = control.rawValue
                summary["control_differs"] = control == .differs
                summary["control_margin"] = result.controlMargin ?? 0
            }
            printJSONLine(summary)
            return
        }
        let width = max(18, (result.rows.map(\.layer.count).max() ?? 0) + 2), quantityWidth = 28
        let control = result.control != nil
        print("layer".padding(toLength: width, withPad: " ", startingAt: 0) + "quantity".padding(toLength: quantityWidth, withPad: " ", startingAt: 0)
              + "max |want|".leftPadded(11) + "floor".leftPadded(11) + "N ranks".leftPadded(11) + (control ? "control".leftPadded(11) : "") + "  ok")
        for r in result.rows {
            print(r.layer.padding(toLength: width, withPad: " ", startingAt: 0) + r.quantity.padding(toLength: quantityWidth, withPad: " ", startingAt: 0)
                  + String(format: "%11.3e%11.3e%11.3e", r.scale, r.floor, r.distance)
                  + (r.controlDistance.map { String(format: "%11.3e", $0) } ?? "") + (r.withinTolerance ? "  yes" : "  NO"))
        }
        print("noise floor: one process in another valid order (\(result.floorOrder)); distances are the largest |difference| from one process")
        print("activation kinks: \(result.kinkValues) output value(s) of the synchronized run within \(check.kinkWindow) x their layer's largest "
              + "of the kink; \(result.aligned.reference) of the reference's and \(result.aligned.floor) of the floor's lay on the other side "
              + "and took the synchronized run's derivative")
        let tolerance = "\(String(format: "%g", check.floorMultiple)) x floor + \(check.atol) x max |want|"
        print(String(format: "synchronized vs one process: %@ (worst %.3g of the tolerance)",
                     result.synchronizedMatches ? "all within \(tolerance)" : "OUTSIDE \(tolerance)", result.worstRatio))
        print("replicas after \(check.steps) steps: " + (result.replicasIdentical ? "bit-identical on every rank" : "DIFFER between ranks"))
        print("negative control (unsynchronized norm layers): " + verdict)
        print(result.passed ? "verify: PASSED" : "verify: FAILED")
    }
}

/// "2,3,4" -> [2, 3, 4]; nil unless non-negative integers.
func parseCounts(_ text: String) -> [Int]? {
    let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
    return parts.map { $0! }
}

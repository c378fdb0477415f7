import ABNTraining
import ArgumentParser
import Foundation

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that synchronized InPlace-ABN across the current ranks equals one process on the whole batch.",
        discussion: """
        Runs --steps training steps of the config on every rank with synchronized norm layers, runs \
        the same global batches in one replica on rank 0, and prints per layer the largest absolute \
        and relative differences of the norm layers' outputs and input gradients (first step) and of \
        every parameter and running statistic after the last step. It then repeats the distributed \
        run with unsynchronized norm layers: a negative control that must differ. Exits with 1 when a \
        difference is outside the tolerance, the replicas disagree, or the control does not differ. \
        Run it under mpirun (launch/verify.sh -n N CONFIG) or alone (one rank).
        """)

    @Option(help: "The YAML config (model and data).") var config: String
    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set train.global_batch=31 (repeatable).")
    var overrides: [String] = []
    @Option(parsing: .unconditional, help: "Training steps to compare.") var steps = 5
    @Option(help: "Samples per rank, comma-separated (default: train.global_batch split as evenly as possible).")
    var slices: String?
    @Option(parsing: .unconditional, help: "Relative tolerance.") var rtol = 1e-4
    @Option(parsing: .unconditional, help: "Absolute tolerance.") var atol = 1e-5
    @Flag(help: "Print JSON lines instead of a table.") var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps).") }
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
            let check = SynchronizationCheck(config: config, steps: steps, slices: BatchSlices(counts: counts), rtol: rtol, atol: atol)
            let result = try check.run(coordinator, progress: { if !json { coordinator.say("verify: " + $0) } })
            guard coordinator.isRoot else { return }
            report(result, check)
            if !result.passed { throw TrainingError("verification failed (see above).") }
        }
    }

    private func report(_ result: SynchronizationCheck.Result, _ check: SynchronizationCheck) {
        if json {
            for (kind, rows) in [("synchronized", result.synchronized), ("control", result.control ?? [])] {
                for r in rows {
                    printJSONLine(["kind": kind, "layer": r.layer, "quantity": r.quantity, "max_abs": r.maxAbs, "scale": r.scale,
                                   "max_rel": r.maxRel, "within_tolerance": r.withinTolerance])
                }
            }
            var summary: [String: Any] = ["kind": "summary", "world_size": check.slices.counts.count, "slices": check.slices.counts,
                                          "steps": check.steps, "rtol": check.rtol, "atol": check.atol, "passed": result.passed,
                                          "synchronized_matches": result.synchronizedMatches,
                                          "replicas_identical": result.replicasIdentical,
                                          "synchronized_worst_rel": result.synchronized.map(\.maxRel).max() ?? 0]
            if let differs = result.controlDiffers {
                summary["control_differs"] = differs
                summary["control_worst_rel"] = result.control!.map(\.maxRel).max() ?? 0
            }
            printJSONLine(summary)
            return
        }
        print("layer".padding(toLength: 18, withPad: " ", startingAt: 0) + "quantity".padding(toLength: 30, withPad: " ", startingAt: 0)
              + "max |want|".leftPadded(12) + "max abs".leftPadded(12) + "max rel".leftPadded(12) + "  ok")
        for r in result.synchronized {
            print(r.layer.padding(toLength: 18, withPad: " ", startingAt: 0) + r.quantity.padding(toLength: 30, withPad: " ", startingAt: 0)
                  + String(format: "%12.3e%12.3e%12.3e", r.scale, r.maxAbs, r.maxRel) + (r.withinTolerance ? "  yes" : "  NO"))
        }
        let tolerance = "rtol \(check.rtol), atol \(check.atol) x min(1, max |want|)"
        print("synchronized vs one process: " + (result.synchronizedMatches ? "all within \(tolerance)" : "OUTSIDE \(tolerance)"))
        print("replicas after \(check.steps) steps: " + (result.replicasIdentical ? "bit-identical on every rank" : "DIFFER between ranks"))
        if let control = result.control {
            let outside = control.filter { !$0.withinTolerance }.count
            let worst = control.map(\.maxRel).max() ?? 0
            print("negative control (unsynchronized norm layers): \(outside) of \(control.count) quantities outside tolerance, worst rel \(String(format: "%.3e", worst)) -> "
                  + (outside > 0 ? "differs, as it must" : "DOES NOT DIFFER: the check cannot tell synchronization apart"))
        } else {
            print("negative control: not applicable with one rank (unsynchronized equals synchronized)")
        }
        print(result.passed ? "verify: PASSED" : "verify: FAILED")
    }
}

/// "2,3,4" -> [2, 3, 4]; nil unless non-negative integers.
func parseCounts(_ text: String) -> [Int]? {
    let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? -1) >= 0 }) else { return nil }
    return parts.map { $0! }
}

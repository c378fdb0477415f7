import ABNComm
import ABNLayers
import ABNData
import ABNTensor
import ABNTraining
import ArgumentParser
import Foundation

struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step",
        abstract: "Median time of a full training step (forward, backward, SGD) of the reference network, per norm mode.",
        discussion: """
        Builds the reference network once per mode and batch on random 1x28x28 images, chooses the \
        GEMM library of each product as --gemm says (auto: as a training run with train.gemm auto), runs --warmup untimed steps, then times --repeats steps with the modes interleaved (one step of \
        each mode in turn), so that noise on a shared machine hits every mode alike. Reports the \
        median step, images/s, GFLOP/s (conv and linear multiply-adds x 2 x 3), its fraction \
        of a 2048^3 cblas_sgemm measured at the start with the engine's threading, and the \
        median over rounds of each mode's step divided by the standard mode's step of the same round. Under mpirun \
        the batch is the global batch, split over the ranks with synchronized norm layers, and each \
        rank's step is split into compute, norm synchronization and exposed gradient averaging.
        """)

    @Option(name: .customLong("batch"), help: "Global batch size; repeat for several.") var batches: [Int] = [128]
    @Option(name: .customLong("mode"), help: "Norm mode; repeat for several (default: all).") var modes: [NormMode] = NormMode.allCases
    @Option(parsing: .unconditional, help: "Timed steps per mode (the median is reported).") var repeats = 10
    @Option(parsing: .unconditional, help: "Untimed steps per mode first.") var warmup = 2
    @Option(help: "Channel widths of the three stages.") var widths = "32,64,128"
    @Option(help: "Write an SVG chart of step time against batch per mode (give several --batch).") var svg: String?
    @Option(help: "GEMM library: openblas, onednn or auto (per product, as train.gemm auto chooses).") var gemm = "openblas"
    @Flag(help: "Print JSON lines instead of a table.") var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard batches.allSatisfy({ $0 >= 2 }) else { throw ValidationError("every --batch must be at least 2, got \(batches).") }
        guard repeats >= 1, warmup >= 0 else { throw ValidationError("--repeats must be >= 1 and --warmup >= 0.") }
        guard parseWidths(widths) != nil else { throw ValidationError("--widths must be three positive integers like 32,64,128, got '\(widths)'.") }
        guard ["auto", "openblas", "onednn"].contains(gemm) else { throw ValidationError("--gemm must be auto, openblas or onednn, got '\(gemm)'.") }
    }

    func run() throws {
        threads.apply()
        let coordinator = Coordinator.launch()
        coordinator.run {
            var rng = SplitMix64(seed: 3)
            // with the engine's threading: OpenBLAS's own threads would spin on the cores afterwards
            let square = GEMMShape(m: 2048, n: 2048, k: 2048)
            let operands = square.operands(rng: &rng)
            let sgemm = coordinator.isRoot ? median((0..<3).map { _ in square.gflopsSplitOverWorkers(operands) }) : 0
            var config = TrainingConfig()
            config.model.widths = parseWidths(widths)!
            if !json {
                coordinator.say("abn bench step: reference network, \(coordinator.comm.size) rank(s) x \(Parallel.threadCount) thread(s), \(VectorLevel.summary); raw sgemm 2048^3: \(formatted(sgemm)) GFLOP/s")
                coordinator.say("mode        batch    step s   images/s   GFLOP/s  of sgemm  vs standard")
            }
            var chart = SVGChart(title: "Training step of the reference network (\(Parallel.threadCount) threads)",
                                 xLabel: "batch", yLabel: "seconds per step")
            var curves: [NormMode: [(x: Double, y: Double)]] = [:]
            for batch in batches {
                let results = try measure(config: config, batch: batch, coordinator: coordinator)
                for r in results { curves[r.mode, default: []].append((Double(batch), r.median)) }
                for r in results {
                    let gflops = r.flops / r.median / 1e9
                    if json {
                        var line: [String: Any] = ["mode": r.mode.rawValue, "batch": batch, "step_s": r.median,
                                                   "images_per_s": Double(batch) / r.median, "gflops": gflops,
                                                   "sgemm_gflops": sgemm, "ranks": coordinator.comm.size, "threads": Parallel.threadCount]
                        if let ratio = r.vsStandard { line["step_vs_standard"] = ratio }
                        if coordinator.comm.size > 1 { line["per_rank"] = r.perRank }
                        if coordinator.isRoot { printJSONLine(line) }
                    } else {
                        let ratio = r.vsStandard.map { formatted($0, 3) } ?? "-"
                        coordinator.say(r.mode.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0) + String(batch).leftPadded(7)
                                        + formatted(r.median, 4).leftPadded(10) + formatted(Double(batch) / r.median).leftPadded(11)
                                        + formatted(gflops).leftPadded(10) + (formatted(100 * gflops / sgemm, 0) + "%").leftPadded(10)
                                        + ratio.leftPadded(13))
                        for (rank, split) in r.perRank.enumerated() where coordinator.comm.size > 1 {
                            coordinator.say(String(format: "    rank %d: compute %.4f s, norm sync %.4f s, exposed gradient averaging %.4f s",
                                                   rank, split["compute_s"]!, split["norm_sync_s"]!, split["exposed_grad_avg_s"]!))
                        }
                    }
                }
            }
            if let svg, coordinator.isRoot {
                chart.series = modes.enumerated().map { SVGChart.Series(name: $1.rawValue, points: curves[$1] ?? [], dashed: false, colorIndex: $0) }
                try chart.write(to: svg)
                if !json { coordinator.say("chart written to \(svg)") }
            }
        }
    }

    struct ModeResult {
        let mode: NormMode
        let median: Double
        let flops: Double
        /// Per rank: median compute, norm synchronization and exposed gradient averaging seconds.
        let perRank: [[String: Double]]
        /// Median over the rounds of this mode's step / standard's step in the same round.
        let vsStandard: Double?
    }

    /// Times the modes side by side at one global batch.
    private func measure(config: TrainingConfig, batch: Int, coordinator: Coordinator) throws -> [ModeResult] {
        let comm = coordinator.comm
        let slice = BatchSlices(even: batch, ranks: comm.size).counts[comm.rank]
        var rng = SplitMix64(seed: UInt64(7 + comm.rank))
        let images = Tensor(uninitialized: [slice, 1, 28, 28])
        images.fillNormal(using: &rng)
        let batchSlice = Batch(images: images, labels: (0..<slice).map { _ in Int(rng.next() % 10) })
        var replicas: [Replica] = []
        for mode in modes {
            var c = config
            c.model.norm = mode
            let replica = try Replica(config: c, input: ModelInput(channels: 1, classes: 10, task: .classification), comm: comm)
            coordinator.broadcastInitialState(replica.net.parameters)
            replicas.append(replica)
        }
        if gemm == "auto" {  // as a training run chooses, from one untimed step of each mode
            var shapes: [GEMMShape: Int] = [:]
            for replica in replicas {
                let recorded = try BLAS.recordingShapes { _ = try replica.step(batchSlice, globalBatch: batch, learningRate: 0.01) }
                shapes.merge(recorded, uniquingKeysWith: +)
            }
            _ = try coordinator.chooseProducts(shapes)
        } else {
            GEMMChoice.install([:], otherwise: GEMMLibrary(rawValue: gemm)!)
        }
        var timings = Array(repeating: [StepTimings](), count: modes.count)
        for round in 0..<(warmup + repeats) {
            for (i, replica) in replicas.enumerated() {
                comm.barrier(what: "the start of a timed step")
                let (_, t) = try replica.step(batchSlice, globalBatch: batch, learningRate: 0.01)
                if round >= warmup { timings[i].append(t) }
            }
        }
        // the step of the slowest rank is the job's step
        let slowest = modes.indices.map { i in
            var totals = timings[i].map(\.total)
            comm.allreduceMax(&totals, count: totals.count, what: "the step times")
            return totals
        }
        let standard = modes.firstIndex(of: .standard)
        return try modes.indices.map { i in
            let mine = ["compute_s": median(timings[i].map(\.compute)), "norm_sync_s": median(timings[i].map(\.normSynchronization)),
                        "exposed_grad_avg_s": median(timings[i].map(\.exposedGradientAveraging))]
            let perRank = try gatherSplits(mine, comm)
            let flops = 6 * replicas[i].net.forwardMultiplyAdds(height: 28, width: 28) * Double(batch)
            // each round's step over the same round's standard step: paired, so slow phases of a
            // noisy machine cancel
            let ratio = standard.map { j in median(zip(slowest[i], slowest[j]).map { $0 / $1 }) }
            return ModeResult(mode: modes[i], median: median(slowest[i]), flops: flops, perRank: perRank, vsStandard: ratio)
        }
    }

    private func gatherSplits(_ split: [String: Double], _ comm: Communicator) throws -> [[String: Double]] {
        let keys = ["compute_s", "norm_sync_s", "exposed_grad_avg_s"]
        let values = keys.map { Float(split[$0]!) }
        let all = values.withUnsafeBufferPointer { comm.gather($0.baseAddress!, count: keys.count, root: 0, what: "the time splits") }
        return stride(from: 0, to: all.count, by: keys.count).map { start in
            Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, Double(all[start + $0])) })
        }
    }
}

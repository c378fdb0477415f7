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
        abstract: "Median time of a full training step (forward, backward, SGD) of the reference network or a config's model, per norm mode.",
        discussion: """
        Builds the network once per mode and batch: the reference network (1-channel inputs, 10 \
        classes), or the model of --config, whose input channels and classes come from the set \
        data.generate makes, else from data.channels and model.classes (no data is read). It \
        trains on random images of --crop with random targets of its task, with the GEMM library \
        of each product as --gemm says (auto: as a training run with train.gemm auto): --warmup \
        untimed steps, then --repeats timed ones. Without --config the modes are interleaved (one \
        step of each mode in turn), so that noise on a shared machine hits every mode alike, and \
        step_vs_standard is the median over rounds of a mode's step divided by the standard step \
        of the same round. With --config the modes run one after another, each on its own network \
        once the previous one is freed and the heap's free pages are returned to the kernel, so \
        that each mode's resident peak is its own; step_vs_standard is then the ratio of the \
        medians. Reports per mode the median step, images/s, pixels/s, GFLOP/s (conv and linear \
        multiply-adds x 2 x 3) and its fraction of a 2048^3 cblas_sgemm measured at the start with \
        the engine's threading, the tensor ledger's peak bytes over the mode's steps (parameters, \
        gradients, momentum, activations, scratch, the batch) and, with --config, the process's \
        peak resident bytes over them (the kernel's VmHWM, reset through /proc/self/clear_refs \
        when the mode's steps start). Resident peaks include the process's baseline (code, \
        libraries, thread stacks, library buffers). Under mpirun the batch is the global batch, \
        split over the ranks (norm layers synchronized as model.sync says), each rank's step is \
        split into compute, norm synchronization and exposed gradient averaging, and the peaks \
        are the largest rank's.
        """)

    @Option(help: "A YAML config whose model to time (default: the reference network).") var config: String?
    @Option(name: .customLong("set"), help: "Override a key of --config, e.g. --set model.head_width=128 (repeatable).")
    var overrides: [String] = []
    @Option(name: .customLong("batch"), help: "Global batch size; repeat for several (default: 128, or the config's train.global_batch).")
    var batches: [Int] = []
    @Option(help: ArgumentHelp("Input size in pixels, square or height,width (default: 28x28, or the config's training input: data.crop_size for segmentation, data.image_size for classification).",
                               valueName: "N|H,W"))
    var crop: String?
    @Option(name: .customLong("mode"), help: "Norm mode; repeat for several (default: all).") var modes: [NormMode] = NormMode.allCases
    @Option(parsing: .unconditional, help: "Timed steps per mode (the median is reported).") var repeats = 10
    @Option(parsing: .unconditional, help: "Untimed steps per mode first.") var warmup = 2
    @Option(help: "Channel widths of the reference network's three stages (without --config).") var widths = "32,64,128"
    @Option(help: "Write an SVG chart of step time against batch per mode (give several --batch).") var svg: String?
    @Option(help: "GEMM library: openblas, onednn or auto (per product, as train.gemm auto chooses); default: openblas, or the config's train.gemm.")
    var gemm: GEMMSetting?
    @Flag(help: "Print JSON lines instead of a table.") var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard batches.allSatisfy({ $0 >= 2 }) else { throw ValidationError("every --batch must be at least 2, got \(batches).") }
        guard repeats >= 1, warmup >= 0 else { throw ValidationError("--repeats must be >= 1 and --warmup >= 0.") }
        guard parseWidths(widths) != nil else { throw ValidationError("--widths must be three positive integers like 32,64,128, got '\(widths)'.") }
        if let crop, parseSize(crop) == nil { throw ValidationError("--crop must be N or H,W with each side 8 to 8192 pixels, got '\(crop)'.") }
        if config == nil && !overrides.isEmpty { throw ValidationError("--set needs --config.") }
    }

    func run() throws {
        threads.apply()
        let coordinator = Coordinator.launch()
        coordinator.run {
            let subject = try subject(coordinator)
            let batches = self.batches.isEmpty ? [subject.defaultBatch] : self.batches
            guard batches.allSatisfy({ $0 >= 2 }) else { throw TrainingError("the batch must be at least 2, got \(batches); pass --batch.") }
            let sgemm = coordinator.isRoot ? squareSGEMMGFLOPS() : 0
            if !json {
                coordinator.say("abn bench step: \(subject.description), crop \(subject.height)x\(subject.width), "
                                + "\(subject.oneModeAtATime ? "modes one after another" : "modes interleaved"), "
                                + "\(coordinator.comm.size) rank(s) x \(Parallel.threadCount) thread(s), \(VectorLevel.summary); raw sgemm 2048^3: \(formatted(sgemm)) GFLOP/s")
                coordinator.say("mode        batch    step s   images/s   Mpixel/s   GFLOP/s  of sgemm  vs standard  ledger MiB  resident MiB")
            }
            var chart = SVGChart(title: "Training step of the \(subject.description) (\(Parallel.threadCount) threads)",
                                 xLabel: "batch", yLabel: "seconds per step")
            var curves: [NormMode: [(x: Double, y: Double)]] = [:]
            for batch in batches {
                let results = try measure(subject, batch: batch, coordinator: coordinator)
                for r in results { curves[r.mode, default: []].append((Double(batch), r.median)) }
                for r in results { report(r, subject: subject, batch: batch, sgemm: sgemm, coordinator: coordinator) }
            }
            if let svg, coordinator.isRoot {
                chart.series = modes.enumerated().map { SVGChart.Series(name: $1.rawValue, points: curves[$1] ?? [], dashed: false, colorIndex: $0) }
                try chart.write(to: svg)
                if !json { coordinator.say("chart written to \(svg)") }
            }
        }
    }

    /// GFLOP/s of a 2048^3 sgemm (median of 3) with the engine's threading: OpenBLAS's own
    /// threads would spin on the cores afterwards. Its operands are freed on return.
    private func squareSGEMMGFLOPS() -> Double {
        var rng = SplitMix64(seed: 3)
        let square = GEMMShape(m: 2048, n: 2048, k: 2048)
        let operands = square.operands(rng: &rng)
        return median((0..<3).map { _ in square.gflopsSplitOverWorkers(operands) })
    }

    /// The network to time and its input.
    struct Subject {
        let config: TrainingConfig
        let input: ModelInput
        /// Input size in pixels.
        let height, width: Int
        let defaultBatch: Int
        let gemm: GEMMSetting
        let description: String
        /// Whether the modes run one after another (for per-mode resident peaks) rather than interleaved.
        let oneModeAtATime: Bool
    }

    /// The reference network, or the model of --config (rank 0 reads it) with its input known
    /// without reading the data set.
    private func subject(_ coordinator: Coordinator) throws -> Subject {
        let size = crop.flatMap(parseSize)
        guard let config else {
            var c = TrainingConfig()
            c.model.widths = parseWidths(widths)!
            return Subject(config: c, input: ModelInput(channels: 1, classes: 10, task: c.model.arch.task),
                           height: size?.height ?? 28, width: size?.width ?? 28, defaultBatch: 128, gemm: gemm ?? .openblas,
                           description: "reference network", oneModeAtATime: false)
        }
        let c = try coordinator.loadConfig(path: config, overrides: overrides)
        let input = try Self.modelInput(c)
        guard let inputSize = size ?? input.task.implementation.trainingInputSize(c.data) else {
            throw TrainingError("the input size of \(c.data.root) is its first image's, which bench step does not read: pass its size as --crop H,W or set data.image_size.")
        }
        return Subject(config: c, input: input, height: inputSize.height, width: inputSize.width, defaultBatch: c.train.globalBatch,
                       gemm: gemm ?? c.train.gemm, description: "\(c.model.arch) of \(config), \(input.channels)-channel inputs, \(input.classes) classes",
                       oneModeAtATime: true)
    }

    /// The input of `config`'s model without reading its data set: that of the set
    /// `data.generate` makes, else `data.channels` and `model.classes`.
    static func modelInput(_ config: TrainingConfig) throws -> ModelInput {
        if let generated = ModelInput(generatedBy: config) { return generated }
        let missing = (config.data.channels > 0 ? [] : ["data.channels"]) + (config.model.classes > 0 ? [] : ["model.classes"])
        guard missing.isEmpty else {
            throw TrainingError("bench step reads no data set, so the config must give the input channels and classes of \(config.data.root): "
                                + "set \(missing.joined(separator: " and ")), e.g. " + missing.map { "--set \($0)=N" }.joined(separator: " ") + ".")
        }
        return ModelInput(channels: config.data.channels, classes: config.model.classes, task: config.data.format.task)
    }

    /// One mode's figures at one batch.
    struct ModeResult {
        let mode: NormMode
        /// Median step of the slowest rank, seconds.
        let median: Double
        /// Floating-point operations of one step (forward and backward).
        let flops: Double
        /// Per rank: median compute, norm synchronization and exposed gradient averaging seconds.
        let perRank: [[String: Double]]
        /// This mode's step / standard's step: the median of the ratios of each round when
        /// interleaved, else the ratio of the medians.
        let vsStandard: Double?
        /// The tensor ledger's peak over the mode's steps, bytes (largest rank's).
        let ledgerPeakBytes: Int
        /// The process's resident peak over the mode's steps, bytes (largest rank's); nil when
        /// the modes are interleaved.
        let residentPeakBytes: Int?
    }

    /// One mode's replica and its slice of random inputs, charged to a ledger of their own.
    struct ModeRun {
        let mode: NormMode
        let replica: Replica
        let batch: Batch
        let ledger = MemoryLedger()

        /// Builds the network of `subject` in `mode` with rank 0's initial weights, and `slice`
        /// random images with random targets.
        init(_ subject: Subject, mode: NormMode, slice: Int, coordinator: Coordinator) throws {
            self.mode = mode
            var config = subject.config
            config.model.norm = mode
            let comm = coordinator.comm
            (replica, batch) = try MemoryLedger.$current.withValue(ledger) {
                let replica = try Replica(config: config, input: subject.input, comm: comm)
                var rng = SplitMix64(seed: UInt64(7 + comm.rank))
                let images = Tensor(uninitialized: [slice, subject.input.channels, subject.height, subject.width])
                images.fillNormal(using: &rng)
                return (replica, subject.input.task.implementation.randomBatch(images: images, classes: subject.input.classes, rng: &rng))
            }
            coordinator.broadcastInitialState(replica.net.parameters)
        }

        /// One training step of a global batch of `globalBatch` images, on the run's ledger.
        func step(globalBatch: Int) throws -> StepTimings {
            try MemoryLedger.$current.withValue(ledger) { try replica.step(batch, globalBatch: globalBatch, learningRate: 0.01).timings }
        }
    }

    /// Times the modes at one global batch: interleaved, or one after another.
    private func measure(_ subject: Subject, batch: Int, coordinator: Coordinator) throws -> [ModeResult] {
        let comm = coordinator.comm
        let slice = BatchSlices(even: batch, ranks: comm.size).counts[comm.rank]
        // per mode: the timed steps, forward multiply-adds per image, and the ledger's and resident peaks (bytes)
        var timings: [[StepTimings]] = [], multiplyAdds: [Double] = [], peaks: [[Double]] = []
        if subject.oneModeAtATime {
            for mode in modes {
                let run = try ModeRun(subject, mode: mode, slice: slice, coordinator: coordinator)
                try chooseProducts(subject.gemm, for: [run], batch: batch, coordinator: coordinator)
                releaseFreeHeapPages()
                try resetResidentPeak()
                timings += try rounds([run], batch: batch, comm: comm)
                peaks.append([Double(run.ledger.peakBytes), Double(try residentPeakBytes())])
                multiplyAdds.append(run.replica.net.forwardMultiplyAdds(height: subject.height, width: subject.width))
            }
        } else {
            let runs = try modes.map { try ModeRun(subject, mode: $0, slice: slice, coordinator: coordinator) }
            try chooseProducts(subject.gemm, for: runs, batch: batch, coordinator: coordinator)
            timings = try rounds(runs, batch: batch, comm: comm)
            peaks = runs.map { [Double($0.ledger.peakBytes)] }
            multiplyAdds = runs.map { $0.replica.net.forwardMultiplyAdds(height: subject.height, width: subject.width) }
        }
        // the step of the slowest rank is the job's step, the largest rank's peak the job's
        let slowest = modes.indices.map { i in
            var totals = timings[i].map(\.total)
            comm.allreduceMax(&totals, count: totals.count, what: "the step times")
            return totals
        }
        for i in peaks.indices { comm.allreduceMax(&peaks[i], count: peaks[i].count, what: "the memory peaks") }
        let standard = modes.firstIndex(of: .standard)
        return try modes.indices.map { i in
            let mine = ["compute_s": median(timings[i].map(\.compute)), "norm_sync_s": median(timings[i].map(\.normSynchronization)),
                        "exposed_grad_avg_s": median(timings[i].map(\.exposedGradientAveraging))]
            let perRank = try gatherSplits(mine, comm)
            // interleaved: each round's step over the same round's standard step, paired, so
            // slow phases of a noisy machine cancel
            let ratio = standard.map { j in
                subject.oneModeAtATime ? median(slowest[i]) / median(slowest[j]) : median(zip(slowest[i], slowest[j]).map { $0 / $1 })
            }
            return ModeResult(mode: modes[i], median: median(slowest[i]), flops: 6 * Double(batch) * multiplyAdds[i], perRank: perRank, vsStandard: ratio,
                              ledgerPeakBytes: Int(peaks[i][0]), residentPeakBytes: peaks[i].count > 1 ? Int(peaks[i][1]) : nil)
        }
    }

    /// --warmup untimed rounds, then --repeats timed ones, each one step of every run in turn;
    /// the timed steps of each run.
    private func rounds(_ runs: [ModeRun], batch: Int, comm: Communicator) throws -> [[StepTimings]] {
        var timings = Array(repeating: [StepTimings](), count: runs.count)
        for round in 0..<(warmup + repeats) {
            for (i, run) in runs.enumerated() {
                comm.barrier(what: "the start of a timed step")
                let t = try run.step(globalBatch: batch)
                if round >= warmup { timings[i].append(t) }
            }
        }
        return timings
    }

    /// Installs the GEMM library `setting` names for every product; auto chooses, as a training run
    /// does, from the products of one untimed step of each run.
    private func chooseProducts(_ setting: GEMMSetting, for runs: [ModeRun], batch: Int, coordinator: Coordinator) throws {
        if let library = setting.library {
            RunContext.process.gemm = GEMMChoice(otherwise: library)
            return
        }
        var shapes: [GEMMShape: Int] = [:]
        for run in runs {
            shapes.merge(try BLAS.recordingShapes { _ = try run.step(globalBatch: batch) }, uniquingKeysWith: +)
        }
        _ = try coordinator.chooseProducts(shapes)
    }

    /// Prints one mode's line (rank 0).
    private func report(_ r: ModeResult, subject: Subject, batch: Int, sgemm: Double, coordinator: Coordinator) {
        let gflops = r.flops / r.median / 1e9
        let pixels = Double(batch * subject.height * subject.width) / r.median
        if json {
            var line: [String: Any] = ["mode": r.mode.rawValue, "batch": batch, "crop": [subject.height, subject.width], "step_s": r.median,
                                       "images_per_s": Double(batch) / r.median, "pixels_per_s": pixels, "gflops": gflops,
                                       "sgemm_gflops": sgemm, "peak_bytes": r.ledgerPeakBytes,
                                       "ranks": coordinator.comm.size, "threads": Parallel.threadCount]
            if let ratio = r.vsStandard { line["step_vs_standard"] = ratio }
            if let resident = r.residentPeakBytes { line["peak_rss_bytes"] = resident }
            if coordinator.comm.size > 1 { line["per_rank"] = r.perRank }
            if coordinator.isRoot { printJSONLine(line) }
            return
        }
        coordinator.say(r.mode.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0) + String(batch).leftPadded(7)
                        + formatted(r.median, 4).leftPadded(10) + formatted(Double(batch) / r.median).leftPadded(11)
                        + formatted(pixels / 1e6, 2).leftPadded(11) + formatted(gflops).leftPadded(10)
                        + (formatted(100 * gflops / sgemm, 0) + "%").leftPadded(10) + (r.vsStandard.map { formatted($0, 3) } ?? "-").leftPadded(13)
                        + formatted(mib(r.ledgerPeakBytes)).leftPadded(12) + (r.residentPeakBytes.map { formatted(mib($0)) } ?? "-").leftPadded(14))
        for (rank, split) in r.perRank.enumerated() where coordinator.comm.size > 1 {
            coordinator.say(String(format: "    rank %d: compute %.4f s, norm sync %.4f s, exposed gradient averaging %.4f s",
                                   rank, split["compute_s"]!, split["norm_sync_s"]!, split["exposed_grad_avg_s"]!))
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

/// "96" or "96,128" -> (height, width) in pixels, each 8...8192.
func parseSize(_ text: String) -> (height: Int, width: Int)? {
    let sides = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard (1...2).contains(sides.count), sides.allSatisfy({ $0.map { (8...8192).contains($0) } ?? false }) else { return nil }
    return (sides[0]!, sides.last!!)
}

/// Returns the heap's free pages to the kernel (glibc's malloc_trim, when the C library has it),
/// so that memory an earlier mode freed does not count as resident in the next one.
private func releaseFreeHeapPages() {
    guard let trim = dlsym(nil, "malloc_trim") else { return }
    _ = unsafeBitCast(trim, to: (@convention(c) (Int) -> Int32).self)(0)
}

/// Sets the kernel's resident high-water mark of this process (VmHWM) to its resident size now.
private func resetResidentPeak() throws {
    let fd = open("/proc/self/clear_refs", O_WRONLY)
    defer { if fd >= 0 { close(fd) } }
    guard fd >= 0, write(fd, "5", 1) == 1 else {
        throw TrainingError("cannot reset the resident peak through /proc/self/clear_refs: \(String(cString: strerror(errno))).")
    }
}

/// The process's resident high-water mark (VmHWM of /proc/self/status), bytes.
private func residentPeakBytes() throws -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kib = line.split(whereSeparator: \.isWhitespace).dropFirst().first.flatMap({ Int($0) }) else {
        throw TrainingError("no VmHWM line in /proc/self/status: the resident peak needs Linux.")
    }
    return kib * 1024
}

import ABNData
import ABNLayers
import ABNTensor
import ABNTraining
import ArgumentParser
import Foundation

struct BenchMemory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Bytes each norm mode keeps for backward, and the peak over a training step.",
        discussion: """
        For each mode, batch and crop, builds the network (the reference network on 1-channel \
        28x28 images, or the model of --config on random images of its channels at each --crop), \
        runs one warm-up step, then measures with the memory ledger: saved_bytes, the bytes allocated \
        by the forward pass and still held at its end, less the output itself (what is kept for \
        backward); \
        peak_bytes, the ledger's peak over a whole step (forward, loss, backward, SGD) including \
        parameters, gradients, momentum, scratch and the batch itself. With --memory-budget it also \
        finds, per mode, the largest batch at the first crop and the largest crop at the first batch \
        whose step peaks within the budget.
        """)

    @Option(help: "A YAML config whose model to measure (default: the reference network).") var config: String?
    @Option(name: .customLong("set"), help: "Override a key of --config, e.g. --set model.head_width=128 (repeatable).")
    var overrides: [String] = []
    @Option(name: .customLong("batch"), help: "Batch size; repeat for several.") var batches: [Int] = []
    @Option(name: .customLong("crop"), help: "Square input side in pixels; repeat for several (default: 28, or the config's crop).")
    var crops: [Int] = []
    @Option(name: .customLong("mode"), help: "Norm mode (inplace, standard, checkpoint); repeat for several (default: all).")
    var modes: [NormMode] = NormMode.allCases
    @Option(help: "Channel widths of the reference network's three stages (without --config).") var widths = "32,64,128"
    @Option(help: "Also find, per mode, the largest batch and the largest crop whose training step peaks within this many bytes (e.g. 1073741824 or 1GiB).")
    var memoryBudget: String?
    @Option(help: "Write an SVG chart of memory against batch per mode (at the first crop).") var svg: String?
    @Flag(help: "Print JSON lines instead of a table.") var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard batches.allSatisfy({ (1...65_536).contains($0) }) else { throw ValidationError("every --batch must be 1 to 65536, got \(batches).") }
        guard crops.allSatisfy({ (8...8192).contains($0) }) else { throw ValidationError("every --crop must be 8 to 8192 pixels, got \(crops).") }
        guard parseWidths(widths) != nil else { throw ValidationError("--widths must be three positive integers like 32,64,128, got '\(widths)'.") }
        if let memoryBudget, parseBytes(memoryBudget) == nil {
            throw ValidationError("--memory-budget must be a byte count such as 1073741824, 512MiB or 2GiB; got '\(memoryBudget)'.")
        }
        if config == nil && !overrides.isEmpty { throw ValidationError("--set needs --config.") }
    }

    func run() throws {
        threads.apply()
        let probe = try BenchNetwork(configPath: config, overrides: overrides, widths: parseWidths(widths)!)
        let batches = self.batches.isEmpty ? [probe.defaultBatch] : self.batches
        let crops = self.crops.isEmpty ? [probe.defaultCrop] : self.crops
        if !json {
            print("abn bench memory: \(probe.description)")
            print("mode        batch   crop   saved MiB   peak MiB   saved/standard")
        }
        var curves: [NormMode: [(batch: Int, memory: StepMemory)]] = [:]
        for crop in crops {
            for batch in batches {
                let measured = try modes.map { ($0, try probe.memory(mode: $0, batch: batch, crop: crop)) }
                let standardSaved = measured.first { $0.0 == .standard }?.1.savedBytes
                for (mode, m) in measured {
                    if crop == crops[0] { curves[mode, default: []].append((batch, m)) }
                    if json {
                        printJSONLine(["mode": mode.rawValue, "batch": batch, "crop": crop, "saved_bytes": m.savedBytes, "peak_bytes": m.peakBytes,
                                       "peak_rss_bytes": peakResidentBytes()])
                    } else {
                        let ratio = standardSaved.map { formatted(Double(m.savedBytes) / Double($0), 3) } ?? "-"
                        print(mode.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0) + String(batch).leftPadded(7) + String(crop).leftPadded(7)
                              + formatted(mib(m.savedBytes)).leftPadded(12) + formatted(mib(m.peakBytes)).leftPadded(11) + ratio.leftPadded(17))
                    }
                }
            }
        }
        if !json { print("process peak RSS so far: \(formatted(mib(peakResidentBytes()))) MiB") }
        if let budgetText = memoryBudget, let budget = parseBytes(budgetText) {
            try reportBudget(probe, budget: budget, batch: batches[0], crop: crops[0])
        }
        if let svg {
            var chart = SVGChart(title: "Training memory: \(probe.description), crop \(crops[0])", xLabel: "batch", yLabel: "MiB")
            for (i, mode) in modes.enumerated() {
                let points = curves[mode] ?? []
                chart.series.append(.init(name: "\(mode.rawValue) peak", points: points.map { (Double($0.batch), mib($0.memory.peakBytes)) },
                                          dashed: false, colorIndex: i))
                chart.series.append(.init(name: "\(mode.rawValue) saved", points: points.map { (Double($0.batch), mib($0.memory.savedBytes)) },
                                          dashed: true, colorIndex: i))
            }
            try chart.write(to: svg)
            if !json { print("chart written to \(svg)") }
        }
    }

    /// Per mode: the largest batch at `crop` and the largest crop at `batch` within `budget`,
    /// with the ratios to standard (batch, and crop pixels).
    private func reportBudget(_ probe: BenchNetwork, budget: Int, batch: Int, crop: Int) throws {
        let largestBatch = try modes.map { mode in (mode, try largest(from: 2) { try probe.memory(mode: mode, batch: $0, crop: crop).peakBytes <= budget }) }
        let largestCrop = try modes.map { mode in (mode, try largest(from: 8) { try probe.memory(mode: mode, batch: batch, crop: $0).peakBytes <= budget }) }
        let standardBatch = largestBatch.first { $0.0 == .standard }?.1, standardCrop = largestCrop.first { $0.0 == .standard }?.1
        for ((mode, b), (_, c)) in zip(largestBatch, largestCrop) {
            let batchRatio = standardBatch.map { Double(b) / Double(max(1, $0)) }, pixelRatio = standardCrop.map { Double(c * c) / Double(max(1, $0 * $0)) }
            if json {
                var line: [String: Any] = ["mode": mode.rawValue, "memory_budget_bytes": budget, "crop": crop, "largest_batch": b,
                                           "batch": batch, "largest_crop": c]
                if let batchRatio { line["batch_vs_standard"] = batchRatio }
                if let pixelRatio { line["crop_pixels_vs_standard"] = pixelRatio }
                printJSONLine(line)
            } else {
                let vs = mode == .standard ? "" : "  (\(batchRatio.map { formatted($0, 2) } ?? "-") x standard's batch, \(pixelRatio.map { formatted($0, 2) } ?? "-") x its crop pixels)"
                print("\(mode.rawValue): within \(formatted(mib(budget))) MiB: batch \(b) at crop \(crop); crop \(c) at batch \(batch)\(vs)")
            }
        }
    }

    /// The largest n >= `start` for which `fits(n)` holds (fits is monotone): doubling, then bisection.
    private func largest(from start: Int, _ fits: (Int) throws -> Bool) throws -> Int {
        guard try fits(start) else { return 0 }
        var good = start, bad = start * 2
        while try fits(bad) { good = bad; bad *= 2 }
        while bad - good > 1 {
            let mid = (good + bad) / 2
            if try fits(mid) { good = mid } else { bad = mid }
        }
        return good
    }
}

/// Ledger figures of one training step.
struct StepMemory {
    /// Bytes allocated by forward and still held at its end, less its output: kept for backward.
    let savedBytes: Int
    /// Peak live bytes over forward, backward and the optimizer step.
    let peakBytes: Int
}

extension BenchNetwork {
    /// One step in `mode` at `batch` images of crop x crop, after a warm-up step, on a ledger of its own.
    func memory(mode: NormMode, batch: Int, crop: Int) throws -> StepMemory {
        let ledger = MemoryLedger()
        return try MemoryLedger.$current.withValue(ledger) {
            let step = try trainingStep(mode: mode, batch: batch, crop: crop)
            try step { _ in }  // warm-up: scratch reaches its size
            ledger.resetPeak()
            let before = ledger.liveBytes
            var saved = 0
            try step { saved = ledger.liveBytes - before - $0.byteCount }
            return StepMemory(savedBytes: saved, peakBytes: ledger.peakBytes)
        }
    }
}

/// "1073741824", "512MiB", "2GiB", "1.5GB" -> bytes.
func parseBytes(_ text: String) -> Int? {
    let units: [(String, Double)] = [("GiB", 1_073_741_824), ("MiB", 1_048_576), ("KiB", 1024), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("B", 1)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        return Double(text.dropLast(suffix.count)).map { Int($0 * factor) }.flatMap { $0 > 0 ? $0 : nil }
    }
    return Int(text).flatMap { $0 > 0 ? $0 : nil }
}

/// The process's peak resident set size in bytes (getrusage).
func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}

func mib(_ bytes: Int) -> Double { Double(bytes) / 1_048_576 }

import ABNLayers
import ABNTensor
import ArgumentParser
import Foundation

struct BenchMemory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Bytes each norm mode keeps for backward, and the peak over a training step, on the reference network.",
        discussion: """
        For each mode and batch, builds the reference network on random 1x28x28 images, runs one \
        warm-up step, then measures with the memory ledger: saved_bytes, the bytes allocated by the \
        forward pass and still held at its end (what is kept for backward, plus the tiny logits); \
        peak_bytes, the ledger's peak over a whole step (forward, backward, SGD) including \
        parameters, gradients, momentum, scratch and the batch itself.
        """)

    @Option(name: .customLong("batch"), help: "Batch size; repeat for several.") var batches: [Int] = [128]
    @Option(name: .customLong("mode"), help: "Norm mode (inplace, standard, checkpoint); repeat for several (default: all).")
    var modes: [NormMode] = NormMode.allCases
    @Option(help: "Channel widths of the three stages.") var widths = "32,64,128"
    @Option(help: "Also find, per mode, the largest batch whose training step peaks within this many bytes (e.g. 1073741824 or 1GiB).")
    var memoryBudget: String?
    @Option(help: "Write an SVG chart of memory against batch per mode.") var svg: String?
    @Flag(help: "Print JSON lines instead of a table.") var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard batches.allSatisfy({ $0 >= 1 }) else { throw ValidationError("every --batch must be at least 1, got \(batches).") }
        guard parseWidths(widths) != nil else { throw ValidationError("--widths must be three positive integers like 32,64,128, got '\(widths)'.") }
        if let memoryBudget, parseBytes(memoryBudget) == nil {
            throw ValidationError("--memory-budget must be a byte count such as 1073741824, 512MiB or 2GiB; got '\(memoryBudget)'.")
        }
    }

    func run() throws {
        threads.apply()
        let shape = NetworkShape(widths: parseWidths(widths)!)
        if !json {
            print("abn bench memory: reference network, widths \(widths), 1x28x28 inputs")
            print("mode        batch   saved MiB   peak MiB   saved/standard")
        }
        var chart = SVGChart(title: "Training memory of the reference network", xLabel: "batch", yLabel: "MiB")
        var curves: [NormMode: [(batch: Int, memory: StepMemory)]] = [:]
        for batch in batches {
            let measured = try modes.map { ($0, try measureStepMemory(shape: shape, mode: $0, batch: batch)) }
            let standardSaved = measured.first { $0.0 == .standard }?.1.savedBytes
            for (mode, m) in measured {
                curves[mode, default: []].append((batch, m))
                if json {
                    printJSONLine(["mode": mode.rawValue, "batch": batch, "saved_bytes": m.savedBytes, "peak_bytes": m.peakBytes,
                                   "peak_rss_bytes": peakResidentBytes()])
                } else {
                    let ratio = standardSaved.map { formatted(Double(m.savedBytes) / Double($0), 3) } ?? "-"
                    print(mode.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0) + String(batch).leftPadded(7)
                          + formatted(mib(m.savedBytes)).leftPadded(12) + formatted(mib(m.peakBytes)).leftPadded(11)
                          + ratio.leftPadded(17))
                }
            }
        }
        if !json { print("process peak RSS so far: \(formatted(mib(peakResidentBytes()))) MiB") }
        if let budgetText = memoryBudget, let budget = parseBytes(budgetText) {
            let largest = try modes.map { ($0, try largestBatch(shape: shape, mode: $0, budget: budget)) }
            let standardBatch = largest.first { $0.0 == .standard }?.1.batch
            for (mode, (batch, peak)) in largest {
                if json {
                    printJSONLine(["mode": mode.rawValue, "memory_budget_bytes": budget, "largest_batch": batch, "peak_bytes": peak])
                } else {
                    let ratio = mode == .standard ? "" : standardBatch.map { " (\(formatted(Double(batch) / Double($0), 2)) x standard)" } ?? ""
                    print("\(mode.rawValue): largest batch within \(formatted(mib(budget))) MiB: \(batch) (peak \(formatted(mib(peak))) MiB)\(ratio)")
                }
            }
        }
        if let svg {
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

    /// The largest batch whose measured step peak fits `budget`: a line through the peaks at
    /// two small batches predicts it, then a bisection on measured peaks settles it.
    private func largestBatch(shape: NetworkShape, mode: NormMode, budget: Int) throws -> (batch: Int, peak: Int) {
        let small = try measureStepMemory(shape: shape, mode: mode, batch: 8).peakBytes
        let large = try measureStepMemory(shape: shape, mode: mode, batch: 32).peakBytes
        let perSample = max(1, Double(large - small) / 24)
        // fits: the largest batch known to fit, with its peak; tooLarge: the smallest known not to
        var fits = (batch: 1, peak: 0), tooLarge = Int.max
        var probe = max(2, Int(Double(budget - small) / perSample) + 8)
        while tooLarge - fits.batch > 1 {
            let peak = try measureStepMemory(shape: shape, mode: mode, batch: probe).peakBytes
            if peak <= budget { fits = (probe, peak) } else { tooLarge = probe }
            probe = tooLarge == Int.max ? probe + max(1, probe / 16) : (fits.batch + tooLarge) / 2
        }
        return fits
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

extension NormMode: ExpressibleByArgument {}

func mib(_ bytes: Int) -> Double { Double(bytes) / 1_048_576 }

/// Ledger figures of one training step.
struct StepMemory {
    /// Bytes allocated by forward and still held at its end.
    let savedBytes: Int
    /// Peak live bytes over forward, backward and the optimizer step.
    let peakBytes: Int
}

/// Measures one step of the reference network in `mode` at `batch`, after a warm-up step, on
/// a ledger of its own.
func measureStepMemory(shape: NetworkShape, mode: NormMode, batch: Int) throws -> StepMemory {
    let ledger = MemoryLedger()
    return try MemoryLedger.$current.withValue(ledger) {
        let net = try PreActResNet(shape: shape, norm: NormSettings(mode: mode))
        let optimizer = SGD(net.parameters, settings: SGDSettings(learningRate: 0.01, momentum: 0.9, nesterov: true, weightDecay: 5e-4))
        var rng = SplitMix64(seed: 1)
        let images = Tensor(uninitialized: [batch, shape.inChannels, 28, 28])
        images.fillNormal(using: &rng)
        let labels = (0..<batch).map { _ in Int(rng.next() % UInt64(shape.classes)) }
        try trainingStep(net, optimizer, images: images, labels: labels)  // warm-up: scratch reaches its size
        ledger.resetPeak()
        let before = ledger.liveBytes
        var saved = 0
        try trainingStep(net, optimizer, images: images, labels: labels, afterForward: { saved = ledger.liveBytes - before })
        return StepMemory(savedBytes: saved, peakBytes: ledger.peakBytes)
    }
}

/// Forward, softmax cross-entropy (mean over the batch), backward and SGD; returns the loss.
@discardableResult
func trainingStep(_ net: PreActResNet, _ optimizer: SGD, images: Tensor, labels: [Int],
                  afterForward: () -> Void = {}) throws -> Double {
    let logits = try net.forward(images)
    afterForward()
    let dLogits = Tensor(uninitialized: logits.shape)
    let loss = softmaxCrossEntropy(dLogits: dLogits, logits: logits, labels: labels, normalizer: Double(labels.count))
    net.backward(dLogits)
    optimizer.step()
    return loss
}

import ABNTensor
import ABNTraining
import ArgumentParser
import Foundation

struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "GFLOP/s of every convolution of a network, forward and both backward directions, next to raw sgemm.",
        discussion: """
        For each conv shape of the network at the given batch, times the forward pass, the input \
        gradient and the weight gradient after a warm-up, in --repeats rounds: each round \
        first times a raw --peak-size^3 sgemm the way the convolutions run it (each worker a \
        single-threaded sgemm on its share of the columns: the machine's GEMM limit at that moment), \
        then each direction once, each product on the library --gemm names (auto: as a \
        training run with train.gemm auto). Reported: median conv GFLOP/s, median sgemm GFLOP/s \
        (`sgemm_gflops`) and `fraction_of_sgemm`, the median over rounds of conv / sgemm of the same \
        round, so that a slow phase of a shared machine hits both alike. At the end it times, with \
        OpenBLAS's own threads, the same square product (`library_sgemm_gflops`) and, for each direction, a product of the \
        shape of the convolution's im2col GEMM (`same_shape_sgemm_gflops`); OpenBLAS's spinning \
        threads would slow the convolutions, hence last. GFLOP/s count the direct convolution's \
        flops; `lowering` names how each convolution runs ("winograd" ones do 2.25x fewer \
        multiplications, so they can exceed the sgemm). \
        With --config: the convolutions one training step of that config's model runs at --batch \
        and --crop (default: its global batch and training crop), recorded in a first step, in the \
        order of their first call; each direction the step runs is timed, with its calls per step \
        (`calls`) and its share of the step's convolution flops (`step_share`), and a last line \
        adds the directions up: the step's convolution seconds at the measured speeds and their \
        fraction of sgemm. Without it: the reference network's convolutions (--network reference) \
        or, with --network deeplab, the dilated 3x3 convolutions of the segmentation default \
        (configs/fmnist-scenes-deeplab.yaml at 96x96, output stride 4: stage 3 at dilation 2, \
        stage 4 at 4, the head's at 4, 8 and 12, on 24x24 maps) next to the same widths undilated.
        """)

    @Option(help: "A YAML config whose model's convolutions to time (default: --network's).") var config: String?
    @Option(name: .customLong("set"), help: "Override a key of --config (repeatable).") var overrides: [String] = []
    @Option(parsing: .unconditional, help: "Batch size (default: 128, or the config's global batch).") var batch: Int?
    @Option(parsing: .unconditional, help: "Square input side with --config (default: the config's crop).") var crop: Int?
    @Option(parsing: .unconditional, help: "Rounds per shape (medians are reported).") var repeats = 7
    @Option(help: "Channel widths of the three stages.") var widths = "32,64,128"
    @Option(help: "Without --config: reference (the reference classifier, docs/design.md#reference-network) or deeplab (the dilated convolutions of the segmentation default).")
    var network = "reference"
    @Option(parsing: .unconditional, help: "Size of the square sgemm that measures the GEMM limit.") var peakSize = 2048
    @Option(parsing: .unconditional, help: "Elements of one worker's lowered matrix (default: the workspace's).") var columnBudget: Int?
    @Option(help: "Only the convolutions whose name contains this text, e.g. 'stage2', '1x1' or 'd12'.") var only: String?
    @Option(help: "GEMM library: openblas, onednn or auto (per product, as train.gemm auto chooses).") var gemm = GEMMSetting.openblas
    @Flag(help: "Print JSON lines instead of a table.") var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if let batch, !(1...65_536).contains(batch) { throw ValidationError("--batch must be 1 to 65536, got \(batch).") }
        if let crop, !(8...8192).contains(crop) { throw ValidationError("--crop must be 8 to 8192 pixels, got \(crop).") }
        if config == nil && (!overrides.isEmpty || crop != nil) { throw ValidationError("--set and --crop need --config.") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats).") }
        guard parseWidths(widths) != nil else { throw ValidationError("--widths must be three positive integers like 32,64,128, got '\(widths)'.") }
        guard ["reference", "deeplab"].contains(network) else { throw ValidationError("--network must be reference or deeplab, got '\(network)'.") }
        if let columnBudget, columnBudget < 1 { throw ValidationError("--column-budget must be positive, got \(columnBudget).") }
        if config == nil, let only, !builtInConvolutions(batch: 1).contains(where: { $0.name.contains(only) }) {
            let names = builtInConvolutions(batch: 1).map(\.name).joined(separator: ", ")
            throw ValidationError("--only '\(only)' matches no convolution; the names are: \(names).")
        }
    }

    /// A convolution to time: its name, geometry and, for a config's model, its calls per step.
    struct Convolution {
        let name: String
        let geometry: Conv2DGeometry
        let calls: ConvolutionCalls?
    }

    /// One timed convolution direction.
    struct Measurement {
        let kernel: String
        /// How this direction is lowered (`Conv2DGeometry.lowering` and its siblings).
        let lowering: String
        let direction: String
        /// Median GFLOP/s of the convolution.
        let gflops: Double
        let gemm: GEMMShape
        /// Median GFLOP/s of the raw square sgemm over the rounds.
        let limit: Double
        /// Median over the rounds of conv GFLOP/s / the square sgemm's GFLOP/s of the same round.
        let fraction: Double
        /// Calls of this direction in a training step (nil: not recorded).
        let calls: Int?
        /// Flops of those calls.
        let stepFlops: Double
    }

    func run() throws {
        threads.apply()
        var rng = SplitMix64(seed: 1)
        let workspace = Workspace()
        if let columnBudget { workspace.columnBudget = columnBudget }
        let (all, subject, batch) = try self.convolutions()
        let convolutions = all.filter { only.map($0.name.contains) ?? true }
        guard !convolutions.isEmpty else {
            throw ValidationError("--only '\(only ?? "")' matches no convolution; the names are: \(all.map(\.name).joined(separator: ", ")).")
        }
        var results: [Measurement] = []
        var limits: [Double] = []  // every sample of the engine-threaded square sgemm
        let square = GEMMShape(m: peakSize, n: peakSize, k: peakSize)
        let squareOperands = square.operands(rng: &rng)
        for convolution in convolutions {
            let name = convolution.name, g = convolution.geometry
            let x = Tensor(uninitialized: g.inputShape); x.fillUniform(-1, 1, using: &rng)
            let w = Tensor(uninitialized: g.weightShape); w.fillUniform(-0.1, 0.1, using: &rng)
            let y = Tensor(uninitialized: g.outputShape)
            let dy = Tensor(uninitialized: g.outputShape); dy.fillUniform(-1, 1, using: &rng)
            let dx = Tensor(uninitialized: g.inputShape)
            let dw = Tensor(uninitialized: g.weightShape)
            let calls = convolution.calls
            let allDirections: [(String, () -> Void, GEMMShape, Int?, String)] = [
                ("forward", { conv2dForward(output: y, input: x, weight: w, bias: nil, geometry: g, workspace: workspace) },
                 GEMMShape(m: g.outChannels, n: g.batch * g.outPixels, k: g.patchSize), calls?.forward, g.lowering),
                ("input_grad", { conv2dBackward(dInput: dx, dWeight: nil, dBias: nil, dOutput: dy, input: x, weight: w, geometry: g, workspace: workspace) },
                 GEMMShape(transA: true, m: g.patchSize, n: g.batch * g.outPixels, k: g.outChannels), calls?.inputGradient, g.inputGradientLowering),
                ("weight_grad", { conv2dBackward(dInput: nil, dWeight: dw, dBias: nil, dOutput: dy, input: x, weight: w, geometry: g, workspace: workspace) },
                 GEMMShape(transB: true, m: g.outChannels, n: g.patchSize, k: g.batch * g.outPixels), calls?.weightGradient, g.weightGradientLowering),
            ]
            let directions = allDirections.filter { $0.3 != 0 }  // the directions a recorded step does not run are not timed
            // warm-up, recording the products, whose libraries are chosen as a training run chooses
            let shapes = BLAS.recordingShapes {
                for direction in directions { direction.1() }
                _ = square.gflopsSplitOverWorkers(squareOperands)
            }
            if let library = gemm.library {
                RunContext.process.gemm = GEMMChoice(otherwise: library)
            } else {
                RunContext.process.gemm = GEMMChoice(timings: GEMMCache.forThisMachine().timings(for: shapes) { if !json { print($0) } })
            }
            // rounds of (square sgemm, then each direction once): each conv time is paired with
            // the GEMM limit measured just before it
            var seconds = Array(repeating: [Double](), count: directions.count)
            var rounds: [Double] = []
            for _ in 0..<repeats {
                rounds.append(square.gflopsSplitOverWorkers(squareOperands))
                for (i, direction) in directions.enumerated() {
                    let t0 = monotonicSeconds()
                    direction.1()
                    seconds[i].append(monotonicSeconds() - t0)
                }
            }
            limits += rounds
            for (i, (direction, _, gemm, calls, lowering)) in directions.enumerated() {
                let gflops = seconds[i].map { g.forwardFlops / $0 / 1e9 }
                results.append(Measurement(kernel: name, lowering: lowering, direction: direction, gflops: median(gflops), gemm: gemm,
                                           limit: median(rounds), fraction: median(zip(gflops, rounds).map { $0 / $1 }),
                                           calls: calls, stepFlops: Double(calls ?? 0) * g.forwardFlops))
            }
        }
        workspace.release()
        let stepFlops = results.reduce(0) { $0 + $1.stepFlops }
        let library = square.gflops(repeats: 3, rng: &rng)
        if !json {
            print("abn bench kernels: \(subject), batch \(batch), \(Parallel.threadCount) threads, \(VectorLevel.summary); raw sgemm \(peakSize)^3: "
                  + "\(formatted(limits.min()!))-\(formatted(limits.max()!)) GFLOP/s over the run (engine threads), "
                  + "\(formatted(library)) GFLOP/s (OpenBLAS threads)")
            print("kernel".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "lowering        "
                  + "direction    conv GFLOP/s  sgemm GFLOP/s  same-shape sgemm  conv/sgemm  calls  step share")
        }
        for r in results {
            let sameShape = r.gemm.gflops(repeats: repeats, rng: &rng)
            if json {
                printJSONLine(["kernel": r.kernel, "lowering": r.lowering, "direction": r.direction, "batch": batch, "threads": Parallel.threadCount,
                               "gflops": r.gflops, "sgemm_gflops": r.limit,
                               "library_sgemm_gflops": library, "same_shape_sgemm_gflops": sameShape,
                               "fraction_of_sgemm": r.fraction]
                              .merging(r.calls.map { ["calls": $0, "step_share": r.stepFlops / stepFlops] } ?? [:]) { $1 })
            } else {
                print(r.kernel.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                      + r.lowering.padding(toLength: 16, withPad: " ", startingAt: 0)
                      + r.direction.padding(toLength: 13, withPad: " ", startingAt: 0)
                      + formatted(r.gflops).leftPadded(12) + formatted(r.limit).leftPadded(15) + formatted(sameShape).leftPadded(18)
                      + (formatted(100 * r.fraction, 0) + "%").leftPadded(12)
                      + (r.calls.map(String.init) ?? "-").leftPadded(7)
                      + (r.calls == nil ? "-" : formatted(100 * r.stepFlops / stepFlops) + "%").leftPadded(12))
            }
        }
        guard stepFlops > 0 else { return }
        // the step's convolutions at the measured speeds: each direction's seconds at its median GFLOP/s and
        // at its median fraction of the sgemm's median
        let seconds = results.reduce(0) { $0 + $1.stepFlops / ($1.gflops * 1e9) }
        let sgemmSeconds = results.reduce(0) { $0 + $1.stepFlops / ($1.fraction * $1.limit * 1e9) }
        let fraction = results.reduce(0) { $0 + $1.stepFlops / ($1.limit * 1e9) } / sgemmSeconds
        if json {
            printJSONLine(["kernel": "step", "batch": batch, "threads": Parallel.threadCount, "step_gflop": stepFlops / 1e9,
                           "step_seconds": seconds, "fraction_of_sgemm": fraction])
        } else {
            print("step: \(formatted(stepFlops / 1e9)) GFLOP of convolutions in \(formatted(seconds, 2)) s at these speeds "
                  + "(\(formatted(stepFlops / seconds / 1e9)) GFLOP/s), \(formatted(100 * fraction, 0))% of sgemm")
        }
    }

    /// Width of the kernel column.
    private var nameWidth: Int { config == nil ? 22 : 42 }
}

extension BenchKernels {
    /// The convolutions `--network` names.
    func builtInConvolutions(batch: Int) -> [Convolution] {
        let list = network == "deeplab" ? deeplabDilatedConvolutions(batch: batch) : referenceConvolutions(widths: parseWidths(widths)!, batch: batch)
        return list.map { Convolution(name: $0.0, geometry: $0.1, calls: nil) }
    }

    /// The convolutions of the network, where they come from and the batch: with --config, those
    /// of one training step of its model (named by geometry), else `builtInConvolutions`.
    func convolutions() throws -> (convolutions: [Convolution], subject: String, batch: Int) {
        guard let config else {
            let subject = network == "deeplab" ? "dilated convolutions of the segmentation default" : "reference network"
            return (builtInConvolutions(batch: batch ?? 128), subject, batch ?? 128)
        }
        let network = try BenchNetwork(configPath: config, overrides: overrides, widths: parseWidths(widths)!)
        let batch = batch ?? network.defaultBatch, crop = crop ?? network.defaultCrop
        let recorded = try ConvolutionCalls.recording {
            try network.trainingStep(mode: network.config.model.norm, batch: batch, crop: crop)({ _ in })
        }
        return (recorded.map { Convolution(name: $0.geometry.description, geometry: $0.geometry, calls: $0.calls) },
                "\(network.description), \(network.config.model.norm.rawValue), crop \(crop)", batch)
    }
}

/// The dilated 3x3 convolutions of configs/fmnist-scenes-deeplab.yaml (widths 32, 64, 96, 96,
/// output stride 4: stages 3 and 4 dilated by 2 and 4; head 64 with dilations 4, 8, 12) on
/// 96x96 crops: 24x24 maps. Each output width comes with its shape at dilation 1, the speed a
/// dilated kernel should not fall far below.
func deeplabDilatedConvolutions(batch: Int) -> [(String, Conv2DGeometry)] {
    let shapes = [("stage3.conv1 3x3", 64, 96, 2), ("stage3.conv2 3x3", 96, 96, 2), ("stage4 3x3", 96, 96, 4),
                  ("head aspp 3x3", 96, 64, 4), ("head aspp 3x3", 96, 64, 8), ("head aspp 3x3", 96, 64, 12),
                  ("undilated 3x3", 96, 96, 1), ("undilated 3x3", 96, 64, 1)]
    return shapes.map { name, inChannels, outChannels, d in
        ("\(name) d\(d)" + (name.hasPrefix("undilated") ? " ->\(outChannels)" : ""),
         Conv2DGeometry(input: [batch, inChannels, 24, 24], outChannels: outChannels, kernel: 3, padding: d, dilation: d))
    }
}

/// "32,64,128" -> [32, 64, 128]; nil unless three positive integers.
func parseWidths(_ text: String) -> [Int]? {
    let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard parts.count == 3, parts.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
    return parts.map { $0! }
}

/// The distinct convolutions of the reference network (docs/design.md#reference-network) on 1x28x28 inputs.
func referenceConvolutions(widths w: [Int], batch: Int) -> [(String, Conv2DGeometry)] {
    var out: [(String, Conv2DGeometry)] = [("stem 3x3", Conv2DGeometry(input: [batch, 1, 28, 28], outChannels: w[0], kernel: 3, padding: 1))]
    var cin = w[0], size = 28
    for (i, c) in w.enumerated() {
        let stride = i == 0 ? 1 : 2
        let conv1 = Conv2DGeometry(input: [batch, cin, size, size], outChannels: c, kernel: 3, stride: stride, padding: 1)
        out.append(("stage\(i + 1).0.conv1 3x3", conv1))
        if stride != 1 || cin != c {
            out.append(("stage\(i + 1).0.proj 1x1", Conv2DGeometry(input: [batch, cin, size, size], outChannels: c, kernel: 1, stride: stride)))
        }
        size = conv1.outHeight
        out.append(("stage\(i + 1).*.conv2 3x3", Conv2DGeometry(input: [batch, c, size, size], outChannels: c, kernel: 3, padding: 1)))
        cin = c
    }
    return out
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

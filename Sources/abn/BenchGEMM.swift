import ABNLayers
import ABNTensor
import ArgumentParser
import Foundation

struct BenchGEMM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "The matrix products of a training step, timed shape by shape with OpenBLAS and with oneDNN.",
        discussion: """
        Runs one training step of the network (the reference network, or the model of --config at \
        its batch and crop) recording every product it computes, with its count, then times each \
        shape with each library on one thread (as each engine worker calls them) in --repeats rounds \
        that alternate the libraries: the measurement `train.gemm: auto` makes at start-up. Reports \
        per shape its calls per step, GFLOP/s with each library, oneDNN / OpenBLAS and the choice \
        (oneDNN where it is at least 5% faster), and for the whole step the single-thread seconds of \
        GEMM with OpenBLAS, with oneDNN, and with the choices. OpenBLAS runs with the kernels \
        OPENBLAS_CORETYPE gives it.
        """)

    @Option(help: "A YAML config whose model to measure (default: the reference network).") var config: String?
    @Option(name: .customLong("set"), help: "Override a key of --config (repeatable).") var overrides: [String] = []
    @Option(parsing: .unconditional, help: "Batch size (default: 128, or the config's global batch).") var batch: Int?
    @Option(parsing: .unconditional, help: "Square input side (default: 28, or the config's crop).") var crop: Int?
    @Option(help: "Channel widths of the reference network's three stages (without --config).") var widths = "32,64,128"
    @Option(help: "Norm mode of the recorded step.") var mode: NormMode = .inplace
    @Option(parsing: .unconditional, help: "Rounds per shape and library (medians are reported).") var repeats = 5
    @Flag(help: "Print JSON lines instead of a table.") var json = false
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        if let batch, !(1...65_536).contains(batch) { throw ValidationError("--batch must be 1 to 65536, got \(batch).") }
        if let crop, !(8...8192).contains(crop) { throw ValidationError("--crop must be 8 to 8192 pixels, got \(crop).") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats).") }
        guard parseWidths(widths) != nil else { throw ValidationError("--widths must be three positive integers like 32,64,128, got '\(widths)'.") }
        if config == nil && !overrides.isEmpty { throw ValidationError("--set needs --config.") }
    }

    func run() throws {
        threads.apply()
        let network = try BenchNetwork(configPath: config, overrides: overrides, widths: parseWidths(widths)!)
        let batch = batch ?? network.defaultBatch, crop = crop ?? network.defaultCrop
        let step = try network.trainingStep(mode: mode, batch: batch, crop: crop)
        try step { _ in }  // warm-up
        let shapes = try BLAS.recordingShapes { try step { _ in } }
        if !json {
            print("abn bench gemm: \(network.description), batch \(batch), crop \(crop), \(mode.rawValue); \(shapes.count) shapes, "
                  + "\(shapes.values.reduce(0, +)) products per step; OPENBLAS_CORETYPE="
                  + (ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)"))
            print("shape                      calls   OpenBLAS GFLOP/s   oneDNN GFLOP/s   oneDNN/OpenBLAS   choice")
        }
        let ordered = shapes.sorted { $0.key.flops * Double($0.value) > $1.key.flops * Double($1.value) }
        var totals: [String: Double] = ["openblas": 0, "onednn": 0, "chosen": 0]
        for timing in GEMMChoice.measure(ordered.map(\.key), rounds: repeats) {
            let calls = shapes[timing.shape]!, choice = timing.choice()
            let openblas = timing.gflops[GEMMLibrary.openblas.rawValue]!, onednn = timing.gflops[GEMMLibrary.onednn.rawValue]!
            let work = timing.shape.flops * Double(calls) / 1e9
            totals["openblas"]! += work / openblas
            totals["onednn"]! += work / onednn
            totals["chosen"]! += work / (choice == .onednn ? onednn : openblas)
            if json {
                printJSONLine(["shape": timing.shape.description, "lda": timing.shape.lda, "ldb": timing.shape.ldb, "ldc": timing.shape.ldc,
                               "calls": calls, "openblas_gflops": openblas, "onednn_gflops": onednn, "onednn_vs_openblas": onednn / openblas,
                               "choice": choice.rawValue])
            } else {
                print(timing.shape.description.padding(toLength: 25, withPad: " ", startingAt: 0) + String(calls).leftPadded(7)
                      + formatted(openblas).leftPadded(19) + formatted(onednn).leftPadded(17) + formatted(onednn / openblas, 2).leftPadded(18)
                      + "   " + choice.rawValue)
            }
        }
        if json {
            printJSONLine(["step_gemm_seconds_openblas": totals["openblas"]!, "step_gemm_seconds_onednn": totals["onednn"]!,
                           "step_gemm_seconds_chosen": totals["chosen"]!, "batch": batch, "crop": crop])
        } else {
            print("GEMM seconds per step on one thread: OpenBLAS \(formatted(totals["openblas"]!, 4)), oneDNN \(formatted(totals["onednn"]!, 4)), "
                  + "as chosen \(formatted(totals["chosen"]!, 4))")
        }
    }
}

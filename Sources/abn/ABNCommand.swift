import ABNTensor
import ABNTraining
import ArgumentParser

@main
struct ABN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abn",
        abstract: "Data-parallel training with In-Place Activated BatchNorm, synchronized over MPI.",
        subcommands: [Train.self, Eval.self, Predict.self, Verify.self, Bench.self, DataCommand.self, Convert.self])
}

/// Options shared by the commands that compute.
struct ThreadOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Threads for GEMM and the other kernels (default: OPENBLAS_NUM_THREADS, else the number of cores).")
    var threads: Int?

    func validate() throws {
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be 1 to 1024, got \(threads).") }
    }

    /// Applies the thread count to the engine and OpenBLAS.
    func apply() { Parallel.setThreadCount(threads ?? Parallel.defaultThreadCount()) }
}

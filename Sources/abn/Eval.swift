import ABNData
import ABNTensor
import ABNTraining
import ArgumentParser
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Test metrics of a checkpoint, on one process or under mpirun.",
        discussion: """
        Classification: test loss and accuracy. Segmentation: test loss per valid pixel, pixel \
        accuracy, mIoU and the IoU of each class, from a confusion matrix summed over the whole test \
        images and all ranks, at full resolution as eval.* says (whole images or sliding windows, \
        scales, flip). The model and data come from the config stored in the checkpoint, unless \
        --config is given (a checkpoint abn convert wrote has none).
        """)

    @Option(help: "A checkpoint written by abn train or abn convert.") var checkpoint: String
    @Option(help: "A YAML config to use instead of the one stored in the checkpoint.") var config: String?
    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set data.test_limit=0 (repeatable).")
    var overrides: [String] = []
    @Flag(help: "Print one JSON line.") var json = false
    @Option(help: "Segmentation: write DIR/NNNNN.png (image, ground truth, prediction) for the first test images.")
    var savePredictions: String?
    @Option(parsing: .unconditional, help: "How many test images --save-predictions draws.") var predictions = 8
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard predictions >= 1 else { throw ValidationError("--predictions must be at least 1, got \(predictions).") }
    }

    func run() throws {
        threads.apply()
        let coordinator = Coordinator.launch()
        coordinator.run {
            // rank 0 reads the file and hands config and weights to the others
            let (loaded, config) = try coordinator.loadCheckpoint(path: checkpoint, configFile: self.config, overrides: overrides)
            let session = try Session(config: config, coordinator: coordinator)
            let replica = try session.replica()
            if let loaded {
                try loaded.apply(to: replica, weightsOnly: true)
                if let warning = loaded.epsWarning(config) { FileHandle.standardError.write(Data("abn: warning: \(warning)\n".utf8)) }
            }
            coordinator.broadcastInitialState(replica.net.parameters)
            let loader = session.test, data = session.data
            let ranks = coordinator.comm.size, inference = config.inference(ranks: ranks)
            let result = try evaluate(replica, loader: loader, pixels: config.evaluationPixels(ranks: ranks), inference: inference)
            guard coordinator.isRoot else { return }
            if let directory = savePredictions {
                try ABNTraining.savePredictions(replica, loader: loader, count: predictions, palette: config.data.format.palette(config.data),
                                                directory: directory)
                if !json { print("eval: wrote \(min(predictions, data.test.count)) pictures (image, ground truth, prediction) to \(directory)") }
            }
            if json {
                var line: [String: Any] = ["checkpoint": checkpoint, "step": loaded?.step ?? 0, "samples": result.samples,
                                           "ranks": coordinator.comm.size, "memory_peak_bytes": RunContext.process.ledger.peakBytes]
                line.merge(result.jsonFields) { $1 }
                if result.classIoU != nil { line["classes"] = data.classNames }
                printJSONLine(line)
            } else {
                let how = result.classIoU != nil && !inference.isPlainWhole ? " (\(inference))" : ""
                print("\(checkpoint) (step \(loaded?.step ?? 0)): \(result.summary) on \(result.samples) images\(how)")
                if let iou = result.classIoU {
                    for (name, value) in zip(data.classNames, iou) {
                        print("  IoU " + name.padding(toLength: 16, withPad: " ", startingAt: 0) + (value.map { String(format: "%.4f", $0) } ?? "n/a"))
                    }
                }
            }
        }
    }
}

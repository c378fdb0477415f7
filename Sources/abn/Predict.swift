import ABNData
import ABNTensor
import ABNTraining
import ArgumentParser
import Foundation

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Masks of new images from a segmentation checkpoint, on one process or under mpirun.",
        discussion: """
        Each image (PNG or JPEG, any size; folders are read recursively, sorted by path) gets \
        OUT/NAME.png, a palette PNG of its size whose indices are the predicted classes, computed \
        at full resolution as eval.* says (whole images or sliding windows, scales, flip) after the \
        normalization of data.mean and data.std. With --ids stored, OUT/NAME.png is instead a gray \
        PNG of the ids the data set stores the classes under (data.format's own table or \
        data.label_map: Cityscapes label ids, ADE20K's 1-150), as the data set's evaluation scripts \
        read them. A folder's sub-folders are kept below OUT. The \
        network's input channels and classes come from the checkpoint: no data set is read. Under \
        mpirun each rank predicts a contiguous share of the files.
        """)

    @Option(help: "A checkpoint written by abn train or abn convert.") var checkpoint: String
    @Option(help: "A YAML config to use instead of the one stored in the checkpoint.") var config: String?
    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set eval.mode=slide (repeatable).")
    var overrides: [String] = []
    @Option(help: "The folder to write the masks to (made if missing).") var out = "predictions"
    @Option(help: "What the masks hold: classes (a palette PNG) or stored (the data set's ids for the classes, a gray PNG).")
    var ids = MaskIDs.classes
    @Flag(help: "Also write OUT/NAME_overlay.png: the image with its colored mask blended over it.") var overlay = false
    @Argument(help: "Image files (PNG or JPEG) and folders of them.") var inputs: [String] = []
    @OptionGroup var threads: ThreadOptions

    func validate() throws {
        guard !inputs.isEmpty else { throw ValidationError("give at least one image file or folder to predict.") }
        guard !(overlay && ids == .stored) else {
            throw ValidationError("--overlay and --ids stored: the overlays beside the masks would be taken for predictions by evaluation scripts; "
                                  + "write the overlays in a run of their own.")
        }
    }

    /// What the pixels of a written mask are.
    enum MaskIDs: String, ExpressibleByArgument, CaseIterable {
        /// The predicted classes.
        case classes
        /// The ids the data set stores the predicted classes under.
        case stored
    }

    /// What rank 0 tells the others: the network's sizes from the checkpoint and the files.
    private struct Job: Codable {
        var channels: Int
        var classes: Int
        var files: [PredictionInputs.File]
    }

    func run() throws {
        threads.apply()
        let coordinator = Coordinator.launch()
        coordinator.run {
            let started = monotonicSeconds()
            let comm = coordinator.comm
            // rank 0 reads the checkpoint and lists the files; the others get config, sizes, files and weights from it
            let (loaded, config) = try coordinator.loadCheckpoint(path: checkpoint, configFile: self.config, overrides: overrides)
            var jobText = ""
            if let loaded {
                let input = try ModelInput(checkpoint: loaded, config: config)
                let files = try PredictionInputs(inputs, output: out, overlays: overlay).files
                jobText = String(decoding: try JSONEncoder().encode(Job(channels: input.channels, classes: input.classes, files: files)), as: UTF8.self)
            }
            let job = try JSONDecoder().decode(Job.self, from: Data(coordinator.broadcast(jobText, what: "the images to predict").utf8))
            let predictor = try Predictor(config: config, input: ModelInput(channels: job.channels, classes: job.classes, task: config.model.arch.task),
                                          ranks: comm.size)
            if let loaded {
                try loaded.load(into: predictor.net)
                if let warning = loaded.epsWarning(config) { FileHandle.standardError.write(Data("abn: warning: \(warning)\n".utf8)) }
            }
            coordinator.broadcastInitialState(predictor.net.parameters)

            let palette = config.data.format.palette(config.data)
            let storedIDs = ids == .stored ? try config.data.format.storedLabelMap(config.data).storedIDs(classes: job.classes) : nil
            let shard = job.files[BatchSlices(even: job.files.count, ranks: comm.size).range(rank: comm.rank)]
            let bar = coordinator.isRoot ? ProgressBar(total: shard.count, style: try ProgressStyle.fromEnvironment()) : nil
            bar?.line("predict: \(job.files.count) images on \(comm.size) rank(s) (\(predictor.inference)), \(job.classes) classes -> \(out)")
            var pixels = 0
            for (done, file) in shard.enumerated() {
                let image = try ImageFile.decode(file.image)
                let mask = try predictor.mask(image)
                if let storedIDs {
                    try write(PNGCodec.encode(Image8(width: mask.width, height: mask.height, channels: 1, pixels: mask.pixels.map { storedIDs[Int($0)] })),
                              to: file.mask)
                } else {
                    try write(PNGCodec.encode(indices: mask, palette: palette.colors), to: file.mask)
                }
                if let name = file.overlay { try write(PNGCodec.encode(palette.overlay(image.converted(toChannels: 3), mask: mask)), to: name) }
                pixels += image.width * image.height
                bar?.count(done + 1, label: comm.size > 1 ? "predict (rank 0)" : "predict")
            }
            bar?.finish()
            var totals = [Double(shard.count), Double(pixels)]
            comm.allreduceSum(&totals, count: totals.count, what: "the predicted images")
            coordinator.say(String(format: "predict: wrote %d masks%@ (%.3g megapixels) to %@ in %.1f s", Int(totals[0]),
                                   overlay ? " and overlays" : "", totals[1] / 1e6, out, monotonicSeconds() - started))
        }
    }

    /// Writes `bytes` to `name` below the output folder, making its folders.
    private func write(_ bytes: [UInt8], to name: String) throws {
        let path = (out as NSString).appendingPathComponent(name)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        do { try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw TrainingError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

import ABNData
import Foundation

/// The data a config names: its training and test splits, the task they make, the class names
/// and input channels they give the model, and the pipeline that turns samples into input.
public struct DataSource {
    public let train: any Dataset
    public let test: any Dataset
    public let task: TaskKind
    public let classNames: [String]
    public let channels: Int
    public let pipeline: SamplePipeline

    /// Opens both splits of `config.data` (nothing is decoded but one image's header).
    public init(config: TrainingConfig) throws {
        let d = config.data
        (train, test) = try d.format.open(config)
        task = train.task
        channels = train.channels
        let own = train.classNames
        if config.model.classes > 0, config.model.classes != own.count {
            guard config.model.classes > own.count || task.implementation.acceptsFewerClasses else {
                throw TrainingError("model.classes is \(config.model.classes) but the data set at \(d.root) has \(own.count) classes; set model.classes to 0 (from the data) or at least \(own.count).")
            }
            classNames = (0..<config.model.classes).map { $0 < own.count ? own[$0] : String($0) }
        } else {
            classNames = own
        }
        guard let mean = d.mean.expanded(to: channels), let std = d.std.expanded(to: channels) else {
            throw TrainingError("data.mean and data.std need one value or \(channels) (one per channel of the images at \(d.root)); got \(d.mean.values.count) and \(d.std.values.count).")
        }
        let geometry = try task.implementation.sampleGeometry(d, train: train)
        pipeline = SamplePipeline(geometry: geometry, mean: mean.map(Float.init), std: std.map(Float.init),
                                  augment: d.augment, flip: d.flip, photometric: d.photometric, seed: UInt64(config.train.seed))
    }

    /// Makes the synthetic set `config.data.generate` names at `data.root` when the folder is
    /// missing, showing its progress in `progress` (nil: silently). Call it on every rank,
    /// rank 0 first: ranks on a node without the folder (no shared file system) make their own copy.
    public static func generateIfMissing(_ config: TrainingConfig, progress: ProgressStyle?) throws {
        let g = config.data.generate
        guard g.kind == .fmnistScenes, !FileManager.default.fileExists(atPath: config.data.root) else { return }
        let bar = progress.map { ProgressBar(total: g.train + g.test, style: $0) }
        bar?.line("data: \(config.data.root) is missing; making \(g.train) + \(g.test) Fashion-MNIST scenes of \(g.size)x\(g.size) there (data.generate)")
        defer { bar?.finish() }
        let scenes = FashionMNISTScenes(size: g.size, seed: UInt64(g.seed))
        do {
            try scenes.write(to: config.data.root, train: g.train, test: g.test, fashionRoot: g.fashionMnist) { done, _ in
                bar?.count(done, label: "data: scenes")
            }
        } catch where FileManager.default.fileExists(atPath: config.data.root) {
            // another rank of this node finished first: its copy is the same, byte for byte
        }
    }
}

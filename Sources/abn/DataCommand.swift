import ABNData
import ABNTraining
import ArgumentParser
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Make data sets.",
        subcommands: [FashionMNISTScenesCommand.self])
}

struct FashionMNISTScenesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fmnist-scenes",
        abstract: "Write the synthetic segmentation set made from Fashion-MNIST garments.",
        discussion: """
        Each scene is a SIZE x SIZE RGB canvas with a smooth random background and 2 to 5 \
        Fashion-MNIST garments (train scenes from the train split, test scenes from the test split), \
        scaled by 1 to 2, tinted and alpha-composited; its mask labels each pixel 1 + the garment's \
        class, 0 for background, 255 (ignore) on faint edges. Written as OUT/train/images/NNNNN.png, \
        OUT/train/masks/NNNNN.png, the same under OUT/test, and OUT/classes.txt (11 classes). The \
        same arguments give the same bytes. The set is made in a temporary folder beside OUT and \
        renamed when complete.
        """)

    @Option(help: "The folder to create (must not exist).") var out: String
    @Option(parsing: .unconditional, help: "Canvas side in pixels (at least 56).") var size = 96
    @Option(parsing: .unconditional, help: "Training scenes.") var train = 10_000
    @Option(parsing: .unconditional, help: "Test scenes.") var test = 2_000
    @Option(parsing: .unconditional, help: "Seed of the scenes.") var seed = 0
    @Option(help: "Folder of the Fashion-MNIST IDX .gz files.") var fashionMnist = "/usr/share/datasets/fashion-mnist"

    func validate() throws {
        guard (56...4096).contains(size) else { throw ValidationError("--size must be 56 to 4096 pixels, got \(size).") }
        guard train >= 0, test >= 0, train + test >= 1 else {
            throw ValidationError("--train and --test must be non-negative, and not both 0; got \(train) and \(test).")
        }
        guard train <= 10_000_000, test <= 10_000_000 else { throw ValidationError("--train and --test are limited to 10,000,000 scenes.") }
        guard seed >= 0 else { throw ValidationError("--seed must be non-negative, got \(seed).") }
    }

    func run() throws {
        let scenes = FashionMNISTScenes(size: size, seed: UInt64(seed))
        let bar = ProgressBar(total: train + test, style: try ProgressStyle.fromEnvironment())
        try scenes.write(to: out, train: train, test: test, fashionRoot: fashionMnist) { done, _ in bar.count(done, label: "fmnist-scenes:") }
        bar.finish()
        print("fmnist-scenes: wrote \(train) train and \(test) test scenes of \(size)x\(size) to \(out)")
    }
}

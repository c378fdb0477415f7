import ABNComm
import ABNData
import ABNLayers
import ABNTensor
import ABNTraining
import Foundation

/// The network a benchmark measures and random inputs for it: the reference network, or a
/// config's model.
struct BenchNetwork: CustomStringConvertible {
    let config: TrainingConfig
    let input: ModelInput
    let description: String
    let defaultBatch: Int
    let defaultCrop: Int

    init(configPath: String?, overrides: [String], widths: [Int]) throws {
        guard let configPath else {
            var c = TrainingConfig()
            c.model.widths = widths
            config = c
            input = ModelInput(channels: 1, classes: 10, task: c.model.arch.task)
            description = "reference network, widths \(widths), 1-channel inputs"
            defaultBatch = 128
            defaultCrop = 28
            return
        }
        config = try TrainingConfig.load(path: configPath, overrides: overrides)
        let task = config.data.format.task
        if config.data.channels > 0 && config.model.classes > 0 {
            input = ModelInput(channels: config.data.channels, classes: config.model.classes, task: task)
        } else if !FileManager.default.fileExists(atPath: config.data.root), let generated = ModelInput(generatedBy: config) {
            input = generated  // what training would make there: a benchmark needs no images
        } else {
            do {
                input = ModelInput(try DataSource(config: config))
            } catch {
                throw TrainingError("\(error) (the benchmarks read the data set only for its channels and classes: set data.channels and model.classes to measure without it)")
            }
        }
        description = "\(config.model.arch) of \(configPath), \(input.channels)-channel inputs, \(input.classes) classes"
        defaultBatch = config.train.globalBatch
        defaultCrop = task.implementation.trainingInputSize(config.data)?.height ?? 28  // Fashion-MNIST's
    }

    /// A training step of a new network in `mode` on random inputs (batch x channels x crop x
    /// crop, random labels or masks): forward (the output goes to `afterForward`), the loss,
    /// backward and the SGD step. Builds the network when called, on the current ledger.
    func trainingStep(mode: NormMode, batch: Int, crop: Int) throws -> (_ afterForward: (Tensor) -> Void) throws -> Void {
        var c = config
        c.model.norm = mode
        let net = try c.makeNetwork(input)
        let optimizer = SGD(net.parameters, settings: c.sgdSettings)
        var rng = SplitMix64(seed: 1)
        let images = Tensor(uninitialized: [batch, input.channels, crop, crop])
        images.fillNormal(using: &rng)
        let task = input.task.implementation
        let targets = task.randomBatch(images: images, classes: input.classes, rng: &rng)
        let normalizer = task.lossNormalizer(targets, globalBatch: batch, comm: SingleProcess())
        return { afterForward in
            let output = try net.forward(images)
            afterForward(output)
            let dOutput = Tensor(uninitialized: output.shape)
            _ = task.loss(logits: output, batch: targets, normalizer: normalizer, dLogits: dOutput)
            net.backward(dOutput)
            optimizer.step()
        }
    }
}

import ABNTraining
import ArgumentParser
import Foundation

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert weights trained elsewhere into abn checkpoints.",
        subcommands: [ConvertTorchvision.self])
}

struct ConvertTorchvision: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "torchvision",
        abstract: "Convert a torchvision state dict (ResNet, DeepLabV3) into an abn checkpoint.",
        discussion: """
        IN is a safetensors file of a torchvision state dict, as \
        safetensors.torch.save_file(model.state_dict(), IN) writes it (float32; the int64 \
        num_batches_tracked counters are skipped). An abn norm layer scales by |weight| + eps: a \
        negative BN weight is folded into the convolution before it (that output channel and the \
        BN's running mean negated), and every BN weight w becomes |w| - eps. A |w| below eps \
        cannot be kept exactly (its scale becomes eps); the report lists such weights. OUT is a \
        checkpoint at step 0 without optimizer state or config: evaluate it with abn eval \
        --checkpoint OUT --config FILE, or start training from it with model.pretrained: OUT.
        """)

    @Argument(help: "The torchvision state dict (.safetensors).") var input: String
    @Argument(help: "The abn checkpoint to write.") var output: String
    @Option(help: "eps of the abn norm layers: the config's model.eps.") var eps = 1e-5
    @Flag(help: "Print one JSON line.") var json = false

    func validate() throws {
        guard eps > 0, eps < 1 else { throw ValidationError("--eps must be in (0, 1), got \(eps).") }
    }

    func run() throws {
        guard let data = FileManager.default.contents(atPath: input) else {
            throw TrainingError("cannot read \(input); check the path.")
        }
        let decoded = try Safetensors.decode(data, source: input, requireChecksum: false).entries
        let (entries, report) = try TorchvisionConversion.convert(decoded, eps: Float(eps))
        let file = try Checkpoint.encode(weights: entries.keys.sorted().map { entries[$0]! },
                                         metadata: ["converted_from": (input as NSString).lastPathComponent, "eps": String(Float(eps))])
        do { try file.write(to: URL(fileURLWithPath: output), options: .atomic) } catch {
            throw TrainingError("cannot write \(output): \(error.localizedDescription)")
        }
        let activation = "torchvision's ReLU becomes the config's activation (model.activation, by default leaky_relu with slope 0.01): "
            + "the outputs match those of a network whose ReLUs are LeakyReLU with that slope, not the original's."
        let small = report.belowEps.map { "\($0.layer)[\($0.channel)]" }
        if json {
            printJSONLine(["input": input, "output": output, "eps": decimal(report.eps), "tensors": report.tensors, "norm_layers": report.normLayers,
                           "folded_weights": report.foldedWeights, "folded_layers": report.foldedLayers,
                           "below_eps": report.belowEps.count, "below_eps_weights": small,
                           "below_eps_largest": decimal(report.largestBelowEps), "below_eps_scale_excess": decimal(report.largestScaleExcess),
                           "activation": activation])
            return
        }
        print("convert: \(input) -> \(output): \(report.tensors) tensors, \(report.normLayers) BN layers, eps \(short(report.eps))")
        print("  negative BN weights folded into their convolutions: \(report.foldedWeights)"
              + (report.foldedLayers.isEmpty ? "" : " in \(report.foldedLayers.count) layers (\(report.foldedLayers.joined(separator: ", ")))"))
        if report.belowEps.isEmpty {
            print("  BN weights below eps: none; every BN scale is kept exactly")
        } else {
            print("  BN weights below eps: \(report.belowEps.count) (\(small.joined(separator: ", "))), the largest |w| \(short(report.largestBelowEps)): "
                  + "their scale is eps = \(short(report.eps)) instead of |w|, larger by up to \(short(report.largestScaleExcess))")
        }
        print("  " + activation)
    }

    /// The shortest decimal that reads back as `x`, as a Double (1e-05, not 9.999999747378752e-06).
    private func decimal(_ x: Float) -> Double { Double(x.description)! }

    /// `x` to 3 significant digits.
    private func short(_ x: Float) -> String { String(format: "%.3g", Double(x)) }
}

import ABNLayers
import ABNTensor
import Foundation

/// A training checkpoint: parameters and running statistics under their PyTorch state-dict
/// names, SGD momentum under `optimizer.momentum.<name>`, and metadata (format version, step,
/// epoch, data position, the seed that the data order and augmentation derive from, config,
/// world size, input normalization as `data_mean` and `data_std`).
public struct Checkpoint {
    /// 2: the checksum covers header and data and is required.
    public static let formatVersion = "2"
    /// The largest step a checkpoint may hold.
    static let stepLimit = 1 << 40

    public let entries: [String: Safetensors.Entry]
    public let metadata: [String: String]
    public let source: String

    /// Steps completed when it was written.
    public var step: Int { Int(metadata["step"] ?? "") ?? 0 }

    /// Reads and checks a checkpoint file.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError("cannot read the checkpoint \(path); check the path.")
        }
        let (entries, metadata) = try Safetensors.decode(data, source: path)
        guard metadata["format"] == "abn-checkpoint", metadata["format_version"] == Checkpoint.formatVersion else {
            throw TrainingError("\(path) is not an abn checkpoint of format version \(Checkpoint.formatVersion) (its metadata says format \(metadata["format"] ?? "none"), version \(metadata["format_version"] ?? "none")); use the abn that wrote it.")
        }
        for (key, range) in [("step", 0...Checkpoint.stepLimit), ("epoch", 0...Checkpoint.stepLimit),
                             ("step_in_epoch", 0...Checkpoint.stepLimit), ("world_size", 1...(1 << 24))] {
            guard let value = metadata[key].flatMap({ Int($0) }), range.contains(value) else {
                throw TrainingError("\(path) is not a valid checkpoint: its metadata field \(key) is \(metadata[key].map { "'\($0)'" } ?? "missing"), not an integer in \(range.lowerBound)...\(range.upperBound).")
            }
        }
        self.entries = entries
        self.metadata = metadata
        source = path
    }

    /// The state of `replica` after `step` steps, as the bytes of a safetensors file.
    public static func encode(_ replica: Replica, step: Int, epoch: Int, stepInEpoch: Int, config: TrainingConfig) throws -> Data {
        let store = replica.net.parameters
        var entries: [Safetensors.Entry] = []
        for p in store.parameters + store.buffers {
            entries.append(Safetensors.Entry(name: p.name, shape: p.shape, values: p.value.array))
        }
        for p in store.parameters {
            let v = replica.optimizer.velocity.slice(from: p.offset, shape: p.shape)
            entries.append(Safetensors.Entry(name: "optimizer.momentum.\(p.name)", shape: p.shape, values: v.array))
        }
        let metadata: [String: String] = [
            "format": "abn-checkpoint", "format_version": formatVersion,
            "step": String(step), "epoch": String(epoch), "step_in_epoch": String(stepInEpoch),
            "seed": String(config.train.seed),
            "rng": "stateless: sample order and augmentation derive from (seed, epoch, sample index)",
            "world_size": String(replica.comm.size),
            "model": replica.net.summary, "parameter_count": String(store.parameterCount),
            "data_mean": config.data.mean.description, "data_std": config.data.std.description,
            "config": try config.yaml(),
        ]
        return try Safetensors.encode(entries, metadata: metadata)
    }

    /// A checkpoint of weights alone, as the bytes of a safetensors file: `weights` under their
    /// state-dict names, no optimizer state, no config, at step 0 of one rank; `metadata` adds to
    /// the fields every checkpoint has (`abn convert` writes these).
    public static func encode(weights: [Safetensors.Entry], metadata: [String: String]) throws -> Data {
        let required = ["format": "abn-checkpoint", "format_version": formatVersion,
                        "step": "0", "epoch": "0", "step_in_epoch": "0", "world_size": "1"]
        return try Safetensors.encode(weights, metadata: metadata.merging(required) { $1 })
    }

    /// The YAML config of the checkpoint's model and data: the file at `path` when given, else
    /// the config stored in the checkpoint (one `abn convert` wrote holds none: then an error
    /// asks for a file).
    public func configText(file path: String?) throws -> String {
        if let path {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw TrainingError("cannot read the config file \(path).")
            }
            return text
        }
        guard let stored = metadata["config"] else {
            let origin = metadata["converted_from"].map { " (abn convert wrote it from \($0))" } ?? ""
            throw TrainingError("\(source) holds weights without a config\(origin): give the model and data with --config FILE "
                                + "(model.arch and model.base_width as the weights were trained, model.eps as they were converted for).")
        }
        return stored
    }

    /// A warning when `abn convert` wrote the checkpoint for norm layers of another eps than
    /// `config`'s `model.eps` (their scales |weight| + eps are then off by the difference); nil otherwise.
    public func epsWarning(_ config: TrainingConfig) -> String? {
        guard let converted = metadata["eps"].flatMap(Float.init), converted != Float(config.model.eps) else { return nil }
        return "\(source) was converted for model.eps \(converted), but the config's model.eps is \(Float(config.model.eps)): every norm scale is off by "
            + "the difference; convert again with --eps \(config.model.eps) or set model.eps: \(converted)."
    }

    /// Copies the checkpoint into `replica` (parameters, running statistics and, unless
    /// `weightsOnly`, momentum), after checking it is for the same model.
    public func apply(to replica: Replica, weightsOnly: Bool = false) throws {
        let store = replica.net.parameters
        try load(into: replica.net)
        if !weightsOnly {
            try copy(store.parameters.map { ("optimizer.momentum.\($0.name)", replica.optimizer.velocity.slice(from: $0.offset, shape: $0.shape)) })
        }
    }

    /// Copies the checkpoint's parameters and running statistics into `net`, after checking it
    /// is for the same model.
    public func load(into net: any Network) throws {
        if let model = metadata["model"], model != net.summary {
            throw TrainingError("\(source) is for another model (\(model)); this config builds \(net.summary). Use the config it was trained with, or another run directory.")
        }
        try copy((net.parameters.parameters + net.parameters.buffers).map { ($0.name, $0.value) })
    }

    /// Copies the tensors named in `targets` from the checkpoint, each of the target's shape.
    private func copy(_ targets: [(String, Tensor)]) throws {
        for (name, tensor) in targets {
            guard let e = entries[name] else {
                throw TrainingError("\(source) has no tensor \(name): it is for another model; use the config it was trained with.")
            }
            guard e.shape == tensor.shape else {
                throw TrainingError("\(source): tensor \(name) has shape \(e.shape) but this model's is \(tensor.shape): it is for another model.")
            }
            e.values.withUnsafeBufferPointer { tensor.data.update(from: $0.baseAddress!, count: tensor.count) }
        }
    }
}

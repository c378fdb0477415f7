import ABNLayers
import ABNTensor
import Foundation
import Yams

/// Everything a run needs, read from YAML (snake_case keys). Keys left out take the defaults
/// below; an unknown key, a value of the wrong type or out of range is an error naming the key.
public struct TrainingConfig: Codable, Equatable, Sendable {
    public var model = Model()
    public var data = DataSettings()
    public var train = Train()
    public var checkpoint = Checkpoint()

    public struct Model: Codable, Equatable, Sendable {
        /// Channels of each stage of the pre-activation ResNet.
        public var widths = [32, 64, 128]
        public var blocksPerStage = 2
        /// inplace | standard | checkpoint.
        public var norm = NormMode.inplace
        /// Synchronize batch statistics across ranks (false: each rank normalizes its own slice).
        public var sync = true
        /// leaky_relu | elu | identity, and its slope or alpha.
        public var activation = "leaky_relu"
        public var activationParam: Double = 0.01
        public var eps: Double = 1e-5
        /// Running statistics: running = (1 - momentum) * running + momentum * batch.
        public var momentum: Double = 0.1
        /// Seed of the initial weights.
        public var initSeed = 0
    }

    public struct DataSettings: Codable, Equatable, Sendable {
        /// Folder with the IDX .gz files.
        public var root = "/usr/share/datasets/fashion-mnist"
        public var augment = true
        /// Random crop after zero padding by this many pixels (0: no crop).
        public var cropPadding = 2
        public var flip = true
        /// Use only the first N training / test samples (0: all).
        public var trainLimit = 0
        public var testLimit = 0
        /// Input normalization: (pixel / 255 - mean) / std.
        public var mean: Double = 0.2860
        public var std: Double = 0.3530
    }

    public struct Train: Codable, Equatable, Sendable {
        /// Samples per step over all ranks (the same batches whatever the world size).
        public var globalBatch = 128
        public var epochs = 10
        /// Stop after this many steps (0: run all epochs).
        public var maxSteps = 0
        /// Peak learning rate (reached after warmup).
        public var lr: Double = 0.1
        /// cosine | poly | constant, after a linear warmup of `warmup_steps`.
        public var schedule = "cosine"
        public var polyPower: Double = 0.9
        public var warmupSteps = 200
        public var momentum: Double = 0.9
        public var nesterov = true
        public var weightDecay: Double = 5e-4
        /// Seed of the sample order and augmentation.
        public var seed = 0
        /// Gradient averaging bucket size in KiB, and whether it overlaps backward.
        public var bucketKib = 256
        public var overlap = true
        /// Write a metrics line every N steps.
        public var logEvery = 20
        /// Evaluate on the test set at the end of each epoch.
        public var evaluate = true
    }

    public struct Checkpoint: Codable, Equatable, Sendable {
        /// Write a checkpoint every N steps (0: only at the end).
        public var every = 500
        /// Keep the newest N checkpoints.
        public var keep = 3
    }

    public init() {}

    // MARK: Loading

    /// Reads `path`, applies `overrides` ("train.lr=0.05"), checks keys, types and ranges.
    public static func load(path: String, overrides: [String] = []) throws -> TrainingConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TrainingError("cannot read the config file \(path); check the path (configs/ holds the bundled ones).")
        }
        return try parse(yaml: text, source: path, overrides: overrides)
    }

    /// Parses YAML text (see `load`).
    public static func parse(yaml: String, source: String = "config", overrides: [String] = []) throws -> TrainingConfig {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: yaml) } catch {
            throw TrainingError("\(source) is not valid YAML: \(error)")
        }
        var tree = try defaultTree()
        if let loaded {
            guard let mapping = loaded as? [String: Any] else {
                throw TrainingError("\(source) must be a mapping with sections model, data, train, checkpoint.")
            }
            try merge(mapping, into: &tree, path: [])
        }
        for item in overrides {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw TrainingError("--set '\(item)' must look like KEY=VALUE, e.g. train.lr=0.05.")
            }
            let key = String(item[..<eq]), text = String(item[item.index(after: eq)...])
            let value: Any = (try? Yams.load(yaml: text)).flatMap { $0 } ?? text
            try merge(nest(key.split(separator: ".").map(String.init), value), into: &tree, path: [])
        }
        let config: TrainingConfig
        do {
            let json = try JSONSerialization.data(withJSONObject: tree)
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            config = try decoder.decode(TrainingConfig.self, from: json)
        } catch let DecodingError.typeMismatch(type, context) {
            throw TrainingError("\(keyPath(context.codingPath)): expected \(describe(type)); \(context.debugDescription)")
        } catch let DecodingError.dataCorrupted(context) {
            throw TrainingError("\(keyPath(context.codingPath)): \(context.debugDescription)")
        }
        try config.validate()
        return config
    }

    /// The defaults as a JSON-like tree: its keys are the only ones accepted.
    private static func defaultTree() throws -> [String: Any] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return try JSONSerialization.jsonObject(with: encoder.encode(TrainingConfig())) as! [String: Any]
    }

    private static func nest(_ keys: [String], _ value: Any) -> [String: Any] {
        keys.reversed().reduce(value) { [$1: $0] } as! [String: Any]
    }

    /// Copies `source` over `tree`, rejecting keys the defaults do not have; a number written
    /// as a string ("1e-5") is accepted where a number is expected.
    private static func merge(_ source: [String: Any], into tree: inout [String: Any], path: [String]) throws {
        for (key, value) in source {
            let here = path + [key]
            guard let current = tree[key] else {
                let known = tree.keys.sorted().joined(separator: ", ")
                throw TrainingError("unknown key '\(here.joined(separator: "."))'; the keys here are: \(known).")
            }
            if let section = current as? [String: Any] {
                guard let values = value as? [String: Any] else {
                    throw TrainingError("'\(here.joined(separator: "."))' must be a section with keys \(section.keys.sorted().joined(separator: ", ")).")
                }
                var merged = section
                try merge(values, into: &merged, path: here)
                tree[key] = merged
            } else if current is NSNumber, !(current is Bool), let text = value as? String, let number = Double(text) {
                tree[key] = number
            } else {
                tree[key] = value
            }
        }
    }

    private static func keyPath(_ path: [CodingKey]) -> String {
        path.map { key in key.intValue.map { "[\($0)]" } ?? snakeCase(key.stringValue) }.joined(separator: ".")
            .replacingOccurrences(of: ".[", with: "[")
    }

    private static func snakeCase(_ s: String) -> String {
        s.reduce(into: "") { out, ch in
            if ch.isUppercase { out += "_" + ch.lowercased() } else { out.append(ch) }
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type: "an integer"
        case is Float.Type, is Double.Type: "a number"
        case is Bool.Type: "true or false"
        case is String.Type: "a string"
        default: "a value of type \(type)"
        }
    }

    // MARK: Validation

    /// Range checks, each naming its key.
    public func validate() throws {
        func require(_ ok: Bool, _ key: String, _ message: String) throws {
            if !ok { throw TrainingError("\(key): \(message)") }
        }
        try require(model.widths.count >= 1 && model.widths.allSatisfy { $0 >= 1 }, "model.widths", "must list at least one positive channel count, got \(model.widths).")
        try require(model.blocksPerStage >= 1, "model.blocks_per_stage", "must be at least 1, got \(model.blocksPerStage).")
        do { _ = try activation() } catch let error as LayerError {
            throw TrainingError("model.activation: \(error.description)")
        }
        try require(model.eps > 0, "model.eps", "must be positive, got \(model.eps).")
        try require(model.momentum >= 0 && model.momentum <= 1, "model.momentum", "must be in [0, 1], got \(model.momentum).")
        try require(model.initSeed >= 0, "model.init_seed", "must be >= 0, got \(model.initSeed).")
        try require(data.cropPadding >= 0 && data.cropPadding <= 8, "data.crop_padding", "must be in 0...8, got \(data.cropPadding).")
        try require(data.trainLimit >= 0 && data.testLimit >= 0, "data.train_limit", "limits must be >= 0 (0 means all).")
        try require(data.std > 0, "data.std", "must be positive, got \(data.std).")
        try require(train.globalBatch >= 1, "train.global_batch", "must be at least 1, got \(train.globalBatch).")
        try require(train.epochs >= 1, "train.epochs", "must be at least 1, got \(train.epochs).")
        try require(train.maxSteps >= 0, "train.max_steps", "must be >= 0 (0 means all epochs), got \(train.maxSteps).")
        try require(train.lr > 0 && train.lr < 100, "train.lr", "must be in (0, 100), got \(train.lr).")
        try require(["cosine", "poly", "constant"].contains(train.schedule), "train.schedule", "must be cosine, poly or constant, got '\(train.schedule)'.")
        try require(train.polyPower > 0, "train.poly_power", "must be positive, got \(train.polyPower).")
        try require(train.warmupSteps >= 0, "train.warmup_steps", "must be >= 0, got \(train.warmupSteps).")
        try require(train.momentum >= 0 && train.momentum < 1, "train.momentum", "must be in [0, 1), got \(train.momentum).")
        try require(train.weightDecay >= 0, "train.weight_decay", "must be >= 0, got \(train.weightDecay).")
        try require(train.seed >= 0, "train.seed", "must be >= 0, got \(train.seed).")
        try require(train.bucketKib >= 1, "train.bucket_kib", "must be at least 1, got \(train.bucketKib).")
        try require(train.logEvery >= 1, "train.log_every", "must be at least 1, got \(train.logEvery).")
        try require(checkpoint.every >= 0, "checkpoint.every", "must be >= 0 (0: only at the end), got \(checkpoint.every).")
        try require(checkpoint.keep >= 1, "checkpoint.keep", "must be at least 1, got \(checkpoint.keep).")
    }

    // MARK: Derived settings

    public func activation() throws -> Activation {
        try Activation(name: model.activation, parameter: Float(model.activationParam))
    }

    public var networkShape: NetworkShape {
        NetworkShape(widths: model.widths, blocksPerStage: model.blocksPerStage)
    }

    public func normSettings() throws -> NormSettings {
        NormSettings(mode: model.norm, activation: try activation(), eps: Float(model.eps), momentum: Float(model.momentum))
    }

    public var sgdSettings: SGDSettings {
        SGDSettings(learningRate: Float(train.lr), momentum: Float(train.momentum), nesterov: train.nesterov,
                    weightDecay: Float(train.weightDecay))
    }

    /// Normalization and (for training) augmentation of the input images.
    public var imagePipeline: ImagePipeline {
        ImagePipeline(mean: Float(data.mean), std: Float(data.std), augment: data.augment,
                      cropPadding: data.cropPadding, flip: data.flip, seed: UInt64(train.seed))
    }

    /// The learning-rate schedule of a run of `totalSteps` steps.
    public func schedule(totalSteps: Int) -> LearningRateSchedule {
        LearningRateSchedule(peak: Float(train.lr), warmupSteps: train.warmupSteps, totalSteps: totalSteps,
                             kind: train.schedule, power: Float(train.polyPower))
    }

    /// The config as YAML (all keys, resolved).
    public func yaml() throws -> String {
        let encoder = YAMLEncoder()
        let text = try encoder.encode(self)
        // YAMLEncoder writes camelCase keys; the files use snake_case.
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard let colon = line.firstIndex(of: ":") else { return String(line) }
            return Self.snakeCase(String(line[..<colon])) + line[colon...]
        }.joined(separator: "\n")
    }
}

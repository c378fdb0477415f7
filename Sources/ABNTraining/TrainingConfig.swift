import ABNData
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
    public var eval = EvalSettings()

    public struct Model: Codable, Equatable, Sendable {
        /// resnet (the reference classifier) | deeplab (DeepLabV3 segmentation network) | resnet18 | resnet34 |
        /// resnet50 | resnet101 (torchvision's classifiers) | deeplabv3 (torchvision's DeepLabV3).
        public var arch = Architecture.resnet
        /// deeplabv3: its ResNet backbone, resnet18 | resnet34 | resnet50 | resnet101.
        public var backbone = ResNetDepth.resnet50
        /// torchvision networks: channels of the first stage (the others double).
        public var baseWidth = 64
        /// resnet, deeplab: channels of each stage of the pre-activation ResNet body.
        public var widths = [32, 64, 128]
        /// Residual blocks of each stage, one per width, e.g. [3, 4, 6, 3] ([]: `blocksPerStage` in every stage;
        /// one number, or a list of one, is read as `blocksPerStage`).
        public var blocks: [Int] = []
        /// Residual blocks of every stage when `blocks` is [] (the older, single-number spelling).
        public var blocksPerStage = 2
        /// Classes of the output (0: the data set's count).
        public var classes = 0
        /// deeplab, deeplabv3: output stride of the body (16; 8 with a dilated last stage; 4 with the last two,
        /// deeplab only), the head's width (0: 64 for deeplab, 256 for deeplabv3) and its three atrous
        /// dilations ([]: [2, 4, 6] for deeplab; for deeplabv3 [12, 24, 36] at output stride 8, [6, 12, 18] at 16).
        public var outputStride = 16
        public var headWidth = 0
        public var asppDilations: [Int] = []
        /// deeplabv3: dropout probability after the ASPP projection.
        public var dropout: Double = 0.5
        /// An abn checkpoint whose tensors initialize a run from step 0 (`PretrainedWeights`;
        /// `abn convert torchvision` writes one); "" for none.
        public var pretrained = ""
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

        /// Residual blocks of each stage: `blocks`, or `blocksPerStage` for every width.
        public var stageBlocks: [Int] { blocks.isEmpty ? Array(repeating: blocksPerStage, count: widths.count) : blocks }

        /// Whether every stage has the same depth.
        var hasUniformDepths: Bool { Set(stageBlocks).count <= 1 }
    }

    public struct DataSettings: Codable, Equatable, Sendable {
        /// fashion-mnist (IDX files) | image-folder (ROOT/SPLIT/CLASS/NAME.png|.jpg) |
        /// segmentation-folder (ROOT/SPLIT/images, ROOT/SPLIT/masks) | cityscapes | voc | ade20k.
        public var format = DataFormat.fashionMNIST
        /// The training and test splits by the layout's own names ("": the layout's default).
        public var trainSplit = ""
        public var testSplit = ""
        /// Segmentation: [stored id, class] pairs mapping the masks' ids to classes (255: ignore);
        /// ids not listed are refused. []: the layout's own map.
        public var labelMap: [[Int]] = []
        /// segmentation-folder, voc: id 0 is ignored and the others move down by one.
        public var reduceZeroLabel = false
        /// The data set's folder.
        public var root = "/usr/share/datasets/fashion-mnist"
        /// Image channels, 1 or 3 (0: those of the first training image).
        public var channels = 0
        /// image-folder: every image is resized to [height, width] ([]: the first training image's size).
        public var imageSize: [Int] = []
        /// segmentation: training crop [height, width] and random scale [min, max] of the image, or
        /// of the image first fitted into `baseSize`, two edges [short, long] its short and long
        /// sides fit, whatever its orientation ([]: the image's own size).
        public var cropSize = [96, 96]
        public var scaleRange = [0.75, 1.5]
        public var baseSize: [Int] = []
        /// segmentation: random brightness, contrast, saturation and hue when training.
        public var photometric = false
        public var augment = true
        /// Classification: random shift by up to this many pixels (0: none).
        public var cropPadding = 2
        public var flip = true
        /// Use only the first N training / test samples (0: all).
        public var trainLimit = 0
        public var testLimit = 0
        /// Input normalization: (pixel / 255 - mean) / std, one value or one per channel.
        public var mean: PerChannel = 0.2860
        public var std: PerChannel = 0.3530
        /// A synthetic set to make at `root` when it is missing.
        public var generate = Generate()

        public struct Generate: Codable, Equatable, Sendable {
            /// none | fmnist-scenes.
            public var kind = Kind.none
            public var size = 96
            public var train = 10_000
            public var test = 2_000
            public var seed = 0
            /// Where the Fashion-MNIST IDX files are.
            public var fashionMnist = "/usr/share/datasets/fashion-mnist"

            /// The synthetic sets `abn` makes.
            public enum Kind: String, ConfigChoice {
                case none
                /// Fashion-MNIST items pasted on textured backgrounds (`FashionMNISTScenes`).
                case fmnistScenes = "fmnist-scenes"
            }
        }
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
        public var schedule = ScheduleKind.cosine
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
        /// Evaluate on the test set at the end of every `evaluate_every`-th epoch and of the run.
        public var evaluate = true
        public var evaluateEvery = 1
        /// Seconds a rank waits for the others in any collective before the job is ended with
        /// a message naming the collective and the ranks that did not arrive (0: no limit).
        public var collectiveTimeoutS: Double = 600
        /// The GEMM library: openblas (the default), onednn, or auto (per product shape, the
        /// faster of the two as measured at start-up and cached per processor).
        public var gemm = GEMMSetting.openblas
    }

    public struct Checkpoint: Codable, Equatable, Sendable {
        /// Write a checkpoint every N steps (0: only at the end).
        public var every = 500
        /// Keep the newest N checkpoints.
        public var keep = 3
    }

    /// How evaluation and `abn predict` compute a whole image's logits (`Inference`).
    public struct EvalSettings: Codable, Equatable, Sendable {
        /// whole (one forward pass per image) | slide (windows of `crop` every `stride`).
        public var mode = Inference.Mode.whole
        /// slide: window [height, width] in pixels ([]: data.crop_size) and its step ([]: two
        /// thirds of the window, rounded).
        public var crop: [Int] = []
        public var stride: [Int] = []
        /// The image is evaluated at each of these scales; the logits are averaged.
        public var scales = [1.0]
        /// Also evaluate the mirrored image (its logits mirrored back) and average.
        public var flip = false
    }

    public init() {}

    // MARK: Loading

    /// Reads `path`, applies `overrides` ("train.lr=0.05"), checks keys, types and ranges.
    public static func load(path: String, overrides: [String] = []) throws -> TrainingConfig {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw TrainingError("cannot read the config file \(path); check the path (configs/ holds the bundled ones).")
        }
        guard let text = String(data: bytes, encoding: .utf8), !text.contains("\0") else {
            throw TrainingError("\(path) is not a text file; a config is YAML text (see configs/).")
        }
        guard !text.allSatisfy(\.isWhitespace) else {
            throw TrainingError("\(path) is empty; a config is YAML with sections model, data, train, checkpoint, eval (see configs/).")
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
        var given: Set<String> = []
        if let loaded {
            guard let mapping = loaded as? [String: Any] else {
                throw TrainingError("\(source) must be a mapping with sections model, data, train, checkpoint, eval.")
            }
            try merge(mapping, into: &tree, path: [], given: &given)
        }
        for item in overrides {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw TrainingError("--set '\(item)' must look like KEY=VALUE, e.g. train.lr=0.05.")
            }
            let key = String(item[..<eq]), text = String(item[item.index(after: eq)...])
            let value: Any = (try? Yams.load(yaml: text)).flatMap { $0 } ?? text
            let setsDepths = !((value as? [Any])?.isEmpty ?? false)  // model.blocks=[] leaves the depths to blocks_per_stage
            if let other = depthSpellings[key], setsDepths, given.remove(other) != nil {  // a later spelling of the depths replaces the earlier
                let name = String(other.dropFirst("model.".count))
                var model = tree["model"] as! [String: Any]
                model[name] = (try defaultTree()["model"] as! [String: Any])[name]
                tree["model"] = model
            }
            try merge(nest(key.split(separator: ".").map(String.init), value), into: &tree, path: [], given: &given)
        }
        var config: TrainingConfig
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
        if given.contains("model.blocks_per_stage"), given.contains("model.blocks"), !config.model.blocks.isEmpty {
            throw TrainingError("model.blocks and model.blocks_per_stage are both given; keep one: model.blocks lists the depth of each stage, "
                                + "model.blocks_per_stage gives every stage the same.")
        }
        if config.model.blocks.count == 1 {  // one number: every stage's depth
            (config.model.blocksPerStage, config.model.blocks) = (config.model.blocks[0], [])
        }
        try config.validate()
        return config
    }

    /// The two spellings of the stage depths, each with the other: an override of one replaces the other.
    private static let depthSpellings = ["model.blocks": "model.blocks_per_stage", "model.blocks_per_stage": "model.blocks"]

    /// The defaults as a JSON-like tree: its keys are the only ones accepted.
    private static func defaultTree() throws -> [String: Any] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return try JSONSerialization.jsonObject(with: encoder.encode(TrainingConfig())) as! [String: Any]
    }

    private static func nest(_ keys: [String], _ value: Any) -> [String: Any] {
        keys.reversed().reduce(value) { [$1: $0] } as! [String: Any]
    }

    /// Copies `source` over `tree`, rejecting keys the defaults do not have, and adds the keys
    /// it sets to `given` ("train.lr"); a number written as a string ("1e-5") is accepted where
    /// a number is expected.
    private static func merge(_ source: [String: Any], into tree: inout [String: Any], path: [String], given: inout Set<String>) throws {
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
                try merge(values, into: &merged, path: here, given: &given)
                tree[key] = merged
                continue
            }
            given.insert(here.joined(separator: "."))
            if current is NSNumber, !(current is Bool), let text = value as? String, let number = Double(text) {
                guard number.isFinite else { throw TrainingError("'\(here.joined(separator: "."))' must be a finite number, got \(text).") }
                tree[key] = number
            } else if let number = value as? Double, !number.isFinite {
                throw TrainingError("'\(here.joined(separator: "."))' must be a finite number, got \(number).")
            } else if integerKeys.contains(here.joined(separator: ".")), !isIntegral(value) {
                throw TrainingError("'\(here.joined(separator: "."))' must be a whole number (or a list of them), got \(value).")
            } else if here == ["model", "blocks"], value is Int || value is Double {
                tree[key] = [value]  // one depth for every stage (whole: checked above)
            } else {
                tree[key] = value
            }
        }
    }

    /// The keys whose values are integers or lists of integers ("train.global_batch").
    private static let integerKeys: Set<String> = {
        var keys: Set<String> = []
        func walk(_ value: Any, _ prefix: String) {
            for child in Mirror(reflecting: value).children {
                guard let label = child.label else { continue }
                let key = prefix + snakeCase(label)
                if child.value is Int || child.value is [Int] {
                    keys.insert(key)
                } else if Mirror(reflecting: child.value).displayStyle == .struct {
                    walk(child.value, key + ".")
                }
            }
        }
        walk(TrainingConfig(), "")
        return keys
    }()

    /// Whether a YAML value is a whole number or a list of whole numbers (what an integer key takes).
    private static func isIntegral(_ value: Any) -> Bool {
        if let list = value as? [Any] { return list.allSatisfy(isIntegral) }
        if value is Int { return true }
        if let number = value as? Double { return number.rounded() == number && abs(number) < 9.0e15 }
        return !(value is NSNumber)  // strings and the like get the decoder's message
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
        try require((1...8).contains(model.widths.count) && model.widths.allSatisfy { (1...16384).contains($0) }, "model.widths",
                    "must list one to eight channel counts in 1...16384, got \(model.widths).")
        if let stages = model.arch.stages {
            try require(model.widths.count == stages, "model.widths", "\(model.arch) needs \(stages) stage widths, got \(model.widths.count).")
        }
        try require(model.classes == 0 || (2...255).contains(model.classes), "model.classes", "must be 0 (from the data) or 2...255, got \(model.classes).")
        let strides = model.arch.outputStrides
        try require(strides.contains(model.outputStride), "model.output_stride",
                    "must be \(strides.map(String.init).joined(separator: ", ")) for \(model.arch), got \(model.outputStride).")
        try require((0...16384).contains(model.headWidth), "model.head_width", "must be 0 (the architecture's) or in 1...16384, got \(model.headWidth).")
        try require(model.asppDilations.isEmpty || (model.asppDilations.count == 3 && model.asppDilations.allSatisfy { (1...64).contains($0) }),
                    "model.aspp_dilations", "must be [] (the architecture's) or three dilations in 1...64, got \(model.asppDilations).")
        try require((1...4096).contains(model.baseWidth), "model.base_width", "must be in 1...4096, got \(model.baseWidth).")
        try require(model.dropout >= 0 && model.dropout < 1, "model.dropout", "must be in [0, 1), got \(model.dropout).")
        try require((1...64).contains(model.blocksPerStage), "model.blocks_per_stage", "must be in 1...64 (as must one number given as model.blocks), got \(model.blocksPerStage).")
        try require(model.blocks.isEmpty || (model.blocks.count == model.widths.count && model.blocks.allSatisfy { (1...64).contains($0) }),
                    "model.blocks", "must list one depth in 1...64 per stage width (\(model.widths.count)), got \(model.blocks).")
        do { _ = try activation() } catch let error as LayerError {
            throw TrainingError("model.activation: \(error.description)")
        }
        try require(model.eps > 0, "model.eps", "must be positive, got \(model.eps).")
        try require(model.momentum >= 0 && model.momentum <= 1, "model.momentum", "must be in [0, 1], got \(model.momentum).")
        try require(model.initSeed >= 0, "model.init_seed", "must be >= 0, got \(model.initSeed).")
        try require(data.cropPadding >= 0 && data.cropPadding <= 8, "data.crop_padding", "must be in 0...8, got \(data.cropPadding).")
        try require(data.trainLimit >= 0 && data.testLimit >= 0, "data.train_limit", "limits must be >= 0 (0 means all).")
        try require(data.generate.train <= 10_000_000 && data.generate.test <= 10_000_000, "data.generate.train", "at most 10,000,000 scenes per split.")
        try require([0, 1, 3].contains(data.channels), "data.channels", "must be 0 (from the images), 1 or 3, got \(data.channels).")
        let input = ModelInput(channels: data.channels > 0 ? data.channels : 3, classes: model.classes > 0 ? model.classes : 255, task: model.arch.task)
        let parameters = try parameterCount(input)
        let weightBytes = 16 * Double(parameters)  // values, gradients, momentum, copies
        try require(weightBytes < Double(ProcessInfo.processInfo.physicalMemory), model.arch.sizeKeys,
                    String(format: "the network has %d parameters (for %d input channels and %d classes), which need about %.3g GB for weights, "
                           + "gradients and momentum; this machine has %.3g GB.",
                           parameters, input.channels, input.classes, weightBytes / 1e9, Double(ProcessInfo.processInfo.physicalMemory) / 1e9))
        try require(data.imageSize.isEmpty || (data.imageSize.count == 2 && data.imageSize.allSatisfy { (1...8192).contains($0) }),
                    "data.image_size", "must be [] (the first image's size) or [height, width] in 1...8192, got \(data.imageSize).")
        try require(data.cropSize.count == 2 && data.cropSize.allSatisfy { (8...8192).contains($0) }, "data.crop_size",
                    "must be [height, width] in 8...8192, got \(data.cropSize).")
        try require(data.scaleRange.count == 2 && data.scaleRange[0] > 0 && data.scaleRange[0] <= data.scaleRange[1] && data.scaleRange[1] <= 8,
                    "data.scale_range", "must be [min, max] with 0 < min <= max <= 8, got \(data.scaleRange).")
        try require(data.mean.values.count >= 1 && data.mean.values.allSatisfy(\.isFinite), "data.mean", "must be a number or a list of numbers, got \(data.mean.values).")
        try require(data.std.values.count >= 1 && data.std.values.allSatisfy { $0 > 0 && $0.isFinite }, "data.std", "must be positive, got \(data.std.values).")
        try require(data.baseSize.isEmpty || (data.baseSize.count == 2 && data.baseSize.allSatisfy { (8...16384).contains($0) }), "data.base_size",
                    "must be [] (the image's own size) or two edges [short, long] in 8...16384, got \(data.baseSize).")
        try require(data.labelMap.allSatisfy { $0.count == 2 && (0...255).contains($0[0]) && (0...255).contains($0[1]) }, "data.label_map",
                    "must list [stored id, class] pairs of integers in 0...255, got \(data.labelMap).")
        try require(data.labelMap.isEmpty || !data.reduceZeroLabel, "data.reduce_zero_label", "cannot be combined with data.label_map; put the shift into the map.")
        try require((56...4096).contains(data.generate.size), "data.generate.size", "must be 56...4096, got \(data.generate.size).")
        try require(data.generate.train >= 0 && data.generate.test >= 0 && data.generate.train + data.generate.test >= 1,
                    "data.generate.train", "train and test counts must be >= 0 and not both 0.")
        try require(data.generate.seed >= 0, "data.generate.seed", "must be >= 0, got \(data.generate.seed).")
        try require((1...(1 << 20)).contains(train.globalBatch), "train.global_batch", "must be in 1...1048576, got \(train.globalBatch).")
        try require((1...1_000_000).contains(train.epochs), "train.epochs", "must be in 1...1000000, got \(train.epochs).")
        try require((0...(1 << 40)).contains(train.maxSteps), "train.max_steps", "must be in 0...2^40 (0 means all epochs), got \(train.maxSteps).")
        try require(train.lr > 0 && train.lr < 100, "train.lr", "must be in (0, 100), got \(train.lr).")
        try require(train.polyPower > 0, "train.poly_power", "must be positive, got \(train.polyPower).")
        try require((0...(1 << 40)).contains(train.warmupSteps), "train.warmup_steps", "must be in 0...2^40, got \(train.warmupSteps).")
        try require(train.momentum >= 0 && train.momentum < 1, "train.momentum", "must be in [0, 1), got \(train.momentum).")
        try require(train.weightDecay >= 0, "train.weight_decay", "must be >= 0, got \(train.weightDecay).")
        try require(train.seed >= 0, "train.seed", "must be >= 0, got \(train.seed).")
        try require((1...(1 << 20)).contains(train.bucketKib), "train.bucket_kib", "must be in 1...1048576 (1 GiB), got \(train.bucketKib).")
        try require(train.logEvery >= 1, "train.log_every", "must be at least 1, got \(train.logEvery).")
        try require((1...1_000_000).contains(train.evaluateEvery), "train.evaluate_every", "must be a number of epochs in 1...1000000, got \(train.evaluateEvery).")
        try require(train.collectiveTimeoutS == 0 || (1...1_000_000).contains(train.collectiveTimeoutS), "train.collective_timeout_s",
                    "must be 0 (no limit) or 1...1000000 seconds, got \(train.collectiveTimeoutS).")
        try require(checkpoint.every >= 0, "checkpoint.every", "must be >= 0 (0: only at the end), got \(checkpoint.every).")
        try require((1...1_000_000).contains(checkpoint.keep), "checkpoint.keep", "must be in 1...1000000, got \(checkpoint.keep).")
        try require(eval.crop.isEmpty || (eval.crop.count == 2 && eval.crop.allSatisfy { (8...8192).contains($0) }), "eval.crop",
                    "must be [] (data.crop_size) or [height, width] in 8...8192, got \(eval.crop).")
        try require(eval.stride.isEmpty || (eval.stride.count == 2 && zip(eval.stride, evalCrop).allSatisfy { (1...$1).contains($0) }), "eval.stride",
                    "must be [] (two thirds of the window) or [height, width], each from 1 to the window's (\(evalCrop)), got \(eval.stride).")
        try require((1...16).contains(eval.scales.count) && eval.scales.allSatisfy { $0 > 0 && $0 <= 8 }, "eval.scales",
                    "must list one to sixteen scales, each 0 < scale <= 8, got \(eval.scales).")
    }

    /// Every key a config accepts, as "section.key" ("train.lr", "data.generate.kind"), sorted:
    /// the leaves of the defaults, which are the only keys `parse` accepts.
    public static let keys: [String] = try! flattened(TrainingConfig()).keys.sorted()

    // MARK: Comparing runs

    /// Keys whose values do not change what a run computes: logging, evaluation and how it
    /// computes logits, checkpoint cadence, how gradients travel, the watchdog, the GEMM library,
    /// the test subset, and the initial weights' file (a resumed run takes its weights from the
    /// checkpoint).
    static let keysThatKeepTheRun: Set<String> = [
        "train.log_every", "train.evaluate", "train.evaluate_every", "train.bucket_kib", "train.overlap", "train.collective_timeout_s", "train.gemm",
        "checkpoint.every", "checkpoint.keep", "data.test_limit", "model.pretrained",
        "eval.mode", "eval.crop", "eval.stride", "eval.scales", "eval.flip",
    ]

    /// The settings that differ from `stored` and change the run (its batches, schedule,
    /// model or data), as "key: stored value -> this value".
    /// Stage depths compare however they are spelled: `model.blocks: [2, 2, 2]` and
    /// `model.blocks_per_stage: 2` (as in checkpoints written before `model.blocks`) do not differ.
    public func runChanges(from stored: TrainingConfig) throws -> [String] {
        let listed = !(model.hasUniformDepths && stored.model.hasUniformDepths)
        let mine = try Self.flattened(depthsSpelled(listed: listed)), theirs = try Self.flattened(stored.depthsSpelled(listed: listed))
        return mine.keys.sorted().compactMap { key in
            guard !Self.keysThatKeepTheRun.contains(key), let now = mine[key], let before = theirs[key], now != before else { return nil }
            return "\(key): \(before) -> \(now)"
        }
    }

    /// This config with its stage depths spelled one way: all in `model.blocks` (`listed`), or
    /// as the `model.blocks_per_stage` of stages that all have the same depth.
    private func depthsSpelled(listed: Bool) -> TrainingConfig {
        var spelled = self
        let depths = model.stageBlocks
        (spelled.model.blocks, spelled.model.blocksPerStage) = listed ? (depths, Model().blocksPerStage) : ([], depths[0])
        return spelled
    }

    /// Every leaf of the config as "section.key" -> its value in JSON.
    private static func flattened(_ config: TrainingConfig) throws -> [String: String] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = .sortedKeys
        let tree = try JSONSerialization.jsonObject(with: encoder.encode(config)) as! [String: Any]
        var out: [String: String] = [:]
        func walk(_ node: [String: Any], _ prefix: String) {
            for (key, value) in node {
                if let section = value as? [String: Any] {
                    walk(section, prefix + key + ".")
                } else if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
                    out[prefix + key] = String(decoding: data, as: UTF8.self)
                }
            }
        }
        walk(tree, "")
        return out
    }

    // MARK: Derived settings

    public func activation() throws -> Activation {
        try Activation(name: model.activation, parameter: Float(model.activationParam))
    }

    public func normSettings() throws -> NormSettings {
        NormSettings(mode: model.norm, activation: try activation(), eps: Float(model.eps), momentum: Float(model.momentum))
    }

    /// The evaluation window [height, width]: `eval.crop`, else `data.crop_size`.
    public var evalCrop: [Int] { eval.crop.isEmpty ? data.cropSize : eval.crop }

    /// The evaluation window's step [height, width]: `eval.stride`, else two thirds of the window, rounded.
    public var evalStride: [Int] { eval.stride.isEmpty ? evalCrop.map { max(1, Int((Double(2 * $0) / 3).rounded())) } : eval.stride }

    public var sgdSettings: SGDSettings {
        SGDSettings(learningRate: Float(train.lr), momentum: Float(train.momentum), nesterov: train.nesterov,
                    weightDecay: Float(train.weightDecay))
    }

    /// The learning-rate schedule of a run of `totalSteps` steps.
    public func schedule(totalSteps: Int) -> LearningRateSchedule {
        LearningRateSchedule(peak: Float(train.lr), warmupSteps: train.warmupSteps, totalSteps: totalSteps,
                             kind: train.schedule, power: Float(train.polyPower))
    }

    /// The config as YAML (all keys, resolved; `model.blocks_per_stage` left out when
    /// `model.blocks` lists the depths, so that the text parses again).
    public func yaml() throws -> String {
        let encoder = YAMLEncoder()
        let text = try encoder.encode(self)
        // YAMLEncoder writes camelCase keys; the files use snake_case.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return lines.filter { model.blocks.isEmpty || !$0.trimmingCharacters(in: .whitespaces).hasPrefix("blocksPerStage:") }.map { line -> String in
            guard let colon = line.firstIndex(of: ":") else { return String(line) }
            return Self.snakeCase(String(line[..<colon])) + line[colon...]
        }.joined(separator: "\n")
    }
}

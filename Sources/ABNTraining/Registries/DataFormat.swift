import ABNData

/// `data.format`: the data-set layouts `abn` opens. Each names the task of its sets, its split
/// names, and opens the training and test splits; adding a layout is a case here and its file
/// in ABNData.
public enum DataFormat: String, ConfigChoice {
    /// The IDX files of Fashion-MNIST (`FashionMNIST`).
    case fashionMNIST = "fashion-mnist"
    /// ROOT/{train,test}/CLASS/*.png|jpg (`ImageFolder`).
    case imageFolder = "image-folder"
    /// ROOT/{train,test}/{images,masks} (`SegmentationFolder`).
    case segmentationFolder = "segmentation-folder"
    /// ROOT/leftImg8bit and ROOT/gtFine (`Cityscapes`).
    case cityscapes
    /// ROOT/JPEGImages, ROOT/SegmentationClass, ROOT/ImageSets/Segmentation (`PascalVOC`).
    case voc
    /// ROOT/images and ROOT/annotations (`ADE20K`).
    case ade20k
    /// ROOT/SPLIT/images, ROOT/SPLIT/(v1.2/)labels and the label table (`MapillaryVistas`).
    case vistas
    /// ROOT/images and ROOT/annotations of COCO-Stuff 164k (`COCOStuff`).
    case cocoStuff = "coco-stuff"

    /// The task of its sets.
    public var task: TaskKind {
        switch self {
        case .fashionMNIST, .imageFolder: .classification
        case .segmentationFolder, .cityscapes, .voc, .ade20k, .vistas, .cocoStuff: .segmentation
        }
    }

    /// Whether it reads the scenes `data.generate` makes (`FashionMNISTScenes` writes a segmentation folder).
    var readsGeneratedScenes: Bool { self == .segmentationFolder }

    /// The layout's names of the training and test splits.
    public var defaultSplits: (train: String, test: String) {
        switch self {
        case .fashionMNIST, .imageFolder, .segmentationFolder: ("train", "test")
        case .cityscapes, .voc: ("train", "val")
        case .ade20k, .vistas: ("training", "validation")
        case .cocoStuff: ("train2017", "val2017")
        }
    }

    /// The label map `data.label_map` or `data.reduce_zero_label` sets; nil for the layout's own.
    private static func configuredLabelMap(_ d: TrainingConfig.DataSettings) -> LabelMap? {
        d.labelMap.isEmpty ? (d.reduceZeroLabel ? LabelMap.reducedZero : nil) : LabelMap(pairs: d.labelMap.map { (id: $0[0], label: $0[1]) })
    }

    /// How the ids the data set's evaluation expects map to classes: the configured label map,
    /// else the layout's own (Cityscapes' label ids, ADE20K's ids 1-150, Mapillary Vistas' label
    /// table at `data.root`, COCO-Stuff's stuffthingmaps ids, the others as stored).
    public func storedLabelMap(_ d: TrainingConfig.DataSettings) throws -> LabelMap {
        if let configured = Self.configuredLabelMap(d) { return configured }
        switch self {
        case .cityscapes: return Cityscapes.labelIDs
        case .ade20k: return .reducedZero
        case .vistas: return try MapillaryVistas.labelTable(root: d.root).labelMap
        case .cocoStuff: return COCOStuff.categoryIDs
        case .fashionMNIST, .imageFolder, .segmentationFolder, .voc: return .identity
        }
    }

    /// The colors of its masks' classes in pictures and palette PNGs: Cityscapes' official ones,
    /// Mapillary Vistas' from its label table at `data.root` when that reads, else the VOC palette.
    public func palette(_ d: TrainingConfig.DataSettings) -> MaskPalette {
        switch self {
        case .cityscapes: Cityscapes.palette
        case .vistas: (try? MapillaryVistas.labelTable(root: d.root).palette) ?? .voc
        case .fashionMNIST, .imageFolder, .segmentationFolder, .voc, .ade20k, .cocoStuff: .voc
        }
    }

    /// Both splits of `config.data` (nothing is decoded but one image's header).
    func open(_ config: TrainingConfig) throws -> (train: any Dataset, test: any Dataset) {
        let d = config.data
        let channels = d.channels > 0 ? d.channels : nil
        let splits = (train: d.trainSplit.isEmpty ? defaultSplits.train : d.trainSplit, test: d.testSplit.isEmpty ? defaultSplits.test : d.testSplit)
        let labelMap = Self.configuredLabelMap(d)
        switch self {
        case .fashionMNIST:
            let train = try FashionMNIST(root: d.root, split: .train, limit: d.trainLimit)
            return (train, try FashionMNIST(root: d.root, split: .test, limit: d.testLimit, classes: train.classNames.count))
        case .imageFolder:
            let train = try ImageFolder(root: d.root, split: splits.train, channels: channels, limit: d.trainLimit)
            return (train, try ImageFolder(root: d.root, split: splits.test, classNames: train.classNames, channels: train.channels, limit: d.testLimit))
        case .segmentationFolder:
            let names = config.model.classes > 0 ? (0..<config.model.classes).map(String.init) : nil
            let map = labelMap ?? .identity
            let train = try SegmentationFolder.open(root: d.root, split: splits.train, classNames: try SegmentationFolder.classesFile(root: d.root) ?? names,
                                                    labelMap: map, channels: channels, limit: d.trainLimit)
            return (train, try SegmentationFolder.open(root: d.root, split: splits.test, classNames: train.classNames, labelMap: map,
                                                       channels: train.channels, limit: d.testLimit))
        case .cityscapes:
            let train = try Cityscapes.open(root: d.root, split: splits.train, labelMap: labelMap, channels: channels, limit: d.trainLimit)
            return (train, try Cityscapes.open(root: d.root, split: splits.test, labelMap: labelMap, channels: train.channels, limit: d.testLimit))
        case .voc:
            let map = labelMap ?? .identity
            let train = try PascalVOC.open(root: d.root, split: splits.train, labelMap: map, channels: channels, limit: d.trainLimit)
            return (train, try PascalVOC.open(root: d.root, split: splits.test, labelMap: map, channels: train.channels, limit: d.testLimit))
        case .ade20k:
            let train = try ADE20K.open(root: d.root, split: splits.train, labelMap: labelMap, channels: channels, limit: d.trainLimit)
            return (train, try ADE20K.open(root: d.root, split: splits.test, labelMap: labelMap, channels: train.channels, limit: d.testLimit))
        case .vistas:
            let train = try MapillaryVistas.open(root: d.root, split: splits.train, labelMap: labelMap, channels: channels, limit: d.trainLimit)
            return (train, try MapillaryVistas.open(root: d.root, split: splits.test, labelMap: labelMap, channels: train.channels, limit: d.testLimit))
        case .cocoStuff:
            let train = try COCOStuff.open(root: d.root, split: splits.train, labelMap: labelMap, channels: channels, limit: d.trainLimit)
            return (train, try COCOStuff.open(root: d.root, split: splits.test, labelMap: labelMap, channels: train.channels, limit: d.testLimit))
        }
    }
}

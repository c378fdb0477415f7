import ABNData

/// `data.format`: the data-set layouts `abn` opens. Each names the task of its sets and opens
/// the training and test splits; adding a layout is a case here and its file in ABNData.
public enum DataFormat: String, CaseIterable, Sendable {
    /// The IDX files of Fashion-MNIST (`FashionMNIST`).
    case fashionMNIST = "fashion-mnist"
    /// ROOT/{train,test}/CLASS/*.png|jpg (`ImageFolder`).
    case imageFolder = "image-folder"
    /// ROOT/{train,test}/{images,masks} (`SegmentationFolder`).
    case segmentationFolder = "segmentation-folder"

    /// The task of its sets.
    public var task: TaskKind {
        switch self {
        case .fashionMNIST, .imageFolder: .classification
        case .segmentationFolder: .segmentation
        }
    }

    /// Both splits of `config.data` (nothing is decoded but one image's header).
    func open(_ config: TrainingConfig) throws -> (train: any Dataset, test: any Dataset) {
        let d = config.data
        let channels = d.channels > 0 ? d.channels : nil
        switch self {
        case .fashionMNIST:
            let train = try FashionMNIST(root: d.root, split: .train, limit: d.trainLimit)
            return (train, try FashionMNIST(root: d.root, split: .test, limit: d.testLimit, classes: train.classNames.count))
        case .imageFolder:
            let train = try ImageFolder(root: d.root, split: "train", channels: channels, limit: d.trainLimit)
            return (train, try ImageFolder(root: d.root, split: "test", classNames: train.classNames, channels: train.channels, limit: d.testLimit))
        case .segmentationFolder:
            let names = config.model.classes > 0 ? (0..<config.model.classes).map(String.init) : nil
            let train = try SegmentationFolder(root: d.root, split: "train", classNames: try SegmentationFolder.classesFile(root: d.root) ?? names,
                                               channels: channels, limit: d.trainLimit)
            return (train, try SegmentationFolder(root: d.root, split: "test", classNames: train.classNames, channels: train.channels, limit: d.testLimit))
        }
    }
}

extension TrainingConfig.DataSettings {
    /// `format` parsed (validated by `TrainingConfig.validate`).
    public var layout: DataFormat { DataFormat(rawValue: format)! }
}

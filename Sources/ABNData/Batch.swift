import ABNTensor

/// Network input for one rank's slice of a step.
public struct Batch {
    /// (n, C, H, W), normalized.
    public let images: Tensor
    /// Classification: n class ids; empty for segmentation.
    public let labels: [Int]
    /// Segmentation: (n, H, W) class ids, 255 = ignore; empty for classification.
    public let masks: [UInt8]

    public var count: Int { images.shape[0] }

    public init(images: Tensor, labels: [Int] = [], masks: [UInt8] = []) {
        self.images = images
        self.labels = labels
        self.masks = masks
    }
}

/// What a data set's targets are: one class per image, or one class per pixel.
public enum TaskKind: String, Sendable, Codable, CaseIterable {
    case classification, segmentation
}

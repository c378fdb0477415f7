/// Errors a user can cause when building or running layers (bad settings, too small a batch).
public enum LayerError: Error, Equatable, CustomStringConvertible {
    case invalidActivation(String)
    case tooFewValuesPerChannel(layer: String, count: Int)
    case invalidSetting(String)

    public var description: String {
        switch self {
        case .invalidActivation(let message), .invalidSetting(let message):
            return message
        case .tooFewValuesPerChannel(let layer, let count):
            return "\(layer): batch normalization in training needs at least 2 values per channel across all ranks, "
                + "but the batch gives \(count). Use a larger global batch (or put the layer in eval mode)."
        }
    }
}
